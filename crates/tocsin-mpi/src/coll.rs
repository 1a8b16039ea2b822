//! Blocking collective operations of the C API (MPI-4.1 chapter 6): `MPI_Barrier`,
//! `MPI_Bcast`, `MPI_Reduce`, `MPI_Allreduce`, `MPI_Gather(v)`, `MPI_Scatter(v)`,
//! `MPI_Allgather(v)`, `MPI_Alltoall(v)`, `MPI_Reduce_scatter(_block)`, `MPI_Scan`,
//! `MPI_Exscan`, with their `_c` forms; and the machinery shared with the nonblocking ones
//! ([`crate::icoll`]): each call is described as a `tocsin::Collective` in bytes and started
//! with `Comm::start_collective`; a blocking call waits for it.
//!
//! ## Buffers
//! A contiguous datatype's buffer goes to the engine directly (offset by its true lb). A
//! non-contiguous one is packed into a temporary (inputs) or received into one and unpacked
//! at completion (outputs). Send and receive types may differ when their type signatures
//! agree in bytes. Reductions need data of one basic type laid out contiguously (see
//! [`crate::op`]). `MPI_IN_PLACE` (the pointer value 1) is accepted where the standard
//! allows it: the send buffer of Allreduce, Allgather(v), Alltoall(v), Reduce_scatter(_block),
//! Scan, Exscan, and the root's send buffer of Reduce and Gather(v) and receive buffer of
//! Scatter(v).
//!
//! ## Algorithms
//! The engine chooses (see `tocsin::coll`): dissemination barrier; binomial broadcast
//! (scatter + ring allgather from 12 KiB on 8 or more ranks); binomial reduce; recursive
//! doubling allreduce (ring reduce-scatter + allgather from 64 KiB); linear gather and
//! scatter; ring allgather; pairwise alltoall; ring reduce-scatter; recursive-doubling scan.
//!
//! ## Errors
//! Through the communicator's error handler: `MPI_ERR_COMM`, `MPI_ERR_COUNT` (negative
//! count), `MPI_ERR_TYPE` (invalid or uncommitted datatype), `MPI_ERR_ROOT`, `MPI_ERR_OP`,
//! `MPI_ERR_BUFFER` (`MPI_IN_PLACE` where not allowed), `MPI_ERR_ARG`,
//! `MPI_ERR_PROC_ABORTED` (a peer died), `MPI_ERR_TRUNCATE` (mismatched sizes).

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use tocsin::Collective;

use crate::abi::*;
use crate::datatype::{pack, Datatype};
use crate::error::{with_comm, MpiErr, MpiResult};
use crate::handle::{self, CommObj};
use crate::op::reduction;
use crate::request::{new_request, Active, Post, ReqObj};

/// What runs when a collective completes (unpacking temporaries, releasing them).
pub(crate) type Fin = Box<dyn FnOnce()>;

/// A collective started in the engine.
pub(crate) struct Started {
    /// The collective in flight; `None` once a blocking call ran it to completion.
    raw: Option<tocsin::RawRequest>,
    fin: Option<Fin>,
}

thread_local! {
    /// Set by [`drive`] while a blocking collective's body runs: [`start`] then runs the
    /// collective to completion itself (tocsin may take a direct path, without a schedule).
    static BLOCKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `true` for `MPI_IN_PLACE`.
pub(crate) fn in_place(p: *const c_void) -> bool {
    p as usize == MPI_IN_PLACE
}

/// A buffer prepared for the engine: where its bytes are and each rank's block in them.
struct Side {
    ptr: *mut u8,
    blocks: Vec<(usize, usize)>,
    /// Non-contiguous datatype: the temporary and where to unpack its blocks.
    tmp: Option<Vec<u8>>,
    regions: Vec<(*mut u8, usize, usize)>,
    dt: Option<Arc<Datatype>>,
}

impl Side {
    fn empty() -> Side {
        Side {
            ptr: std::ptr::null_mut(),
            blocks: Vec::new(),
            tmp: None,
            regions: Vec::new(),
            dt: None,
        }
    }

    /// Bytes of the whole side.
    fn total(&self) -> usize {
        self.blocks.iter().map(|b| b.0 + b.1).max().unwrap_or(0)
    }

    /// The completion action unpacking the temporary into the user's buffer (if any).
    fn unpacker(self) -> Option<Fin> {
        let tmp = self.tmp?;
        let (dt, regions) = (self.dt?, self.regions);
        Some(Box::new(move || {
            for (dst, count, off) in regions {
                // SAFETY: `dst` is the user's receive region for `count` elements of `dt`,
                // lent until completion (MPI's contract); `tmp[off..]` holds their packed
                // bytes.
                unsafe { pack::unpack(&dt, count, &tmp[off..], dst) };
            }
        }))
    }

    /// Keeps the temporary alive until completion (inputs).
    fn keeper(self) -> Option<Fin> {
        let tmp = self.tmp?;
        Some(Box::new(move || drop(tmp)))
    }
}

fn join(a: Option<Fin>, b: Option<Fin>) -> Option<Fin> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Box::new(move || {
            a();
            b();
        })),
    }
}

fn count_of(v: i64) -> MpiResult<usize> {
    usize::try_from(v).map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {v} is negative")))
}

/// Prepares `buf` holding, for each `(displacement in extents, count)` of `parts`, `count`
/// elements of `dt`. `fill`: the current contents are input (packed into a temporary for a
/// non-contiguous type).
///
/// # Safety
/// `buf` holds those elements (MPI's contract).
unsafe fn side(
    buf: *const c_void,
    dth: MPI_Datatype,
    parts: &[(i64, i64)],
    fill: bool,
) -> MpiResult<Side> {
    // SAFETY: the caller's handle (validated).
    let dt = unsafe { handle::comm_datatype(dth)? };
    let ext = dt.extent() as i64;
    let size = dt.size();
    let mut p = Vec::with_capacity(parts.len());
    for &(d, c) in parts {
        let c = count_of(c)?;
        let off = d
            .checked_mul(ext)
            .ok_or_else(|| MpiErr::new(MPI_ERR_ARG, "displacement overflows"))?;
        p.push((off, c));
    }
    let base = buf as *mut u8;
    if dt.is_contiguous() {
        let lo = p.iter().map(|x| x.0).min().unwrap_or(0).min(0);
        let blocks = p
            .iter()
            .map(|&(o, c)| ((o - lo) as usize, c * size))
            .collect();
        return Ok(Side {
            ptr: base.wrapping_offset(dt.true_lb() + lo as isize),
            blocks,
            tmp: None,
            regions: Vec::new(),
            dt: Some(dt.clone()),
        });
    }
    let total: usize = p.iter().map(|x| x.1 * size).sum();
    let mut tmp = vec![0u8; total];
    let mut blocks = Vec::with_capacity(p.len());
    let mut regions = Vec::with_capacity(p.len());
    let mut at = 0;
    for &(o, c) in &p {
        let dst = base.wrapping_offset(o as isize);
        if fill {
            // SAFETY: the region holds `c` elements of `dt` (the caller's contract).
            unsafe { pack::pack(dt, c, dst, &mut tmp[at..at + c * size]) };
        }
        blocks.push((at, c * size));
        regions.push((dst, c, at));
        at += c * size;
    }
    Ok(Side {
        ptr: tmp.as_mut_ptr(),
        blocks,
        tmp: Some(tmp),
        regions,
        dt: Some(dt.clone()),
    })
}

/// `(i × count, count)` for each of `n` ranks.
fn uniform(n: usize, count: i64) -> Vec<(i64, i64)> {
    (0..n as i64).map(|i| (i * count, count)).collect()
}

/// `(displs[i], counts[i])` from C arrays of `n` values.
///
/// # Safety
/// Both arrays hold `n` values (MPI's contract).
pub(crate) unsafe fn v_parts<A, B>(
    counts: *const A,
    displs: *const B,
    n: usize,
) -> MpiResult<Vec<(i64, i64)>>
where
    A: Copy + TryInto<i64>,
    B: Copy + TryInto<i64>,
{
    if n > 0 && (counts.is_null() || displs.is_null()) {
        return Err(MpiErr::new(
            MPI_ERR_ARG,
            "counts or displacements array is NULL",
        ));
    }
    (0..n)
        .map(|i| {
            // SAFETY: `i < n` (the caller's contract).
            let (c, d) = unsafe { (*counts.add(i), *displs.add(i)) };
            Ok((
                d.try_into()
                    .map_err(|_| MpiErr::new(MPI_ERR_ARG, "bad displacement"))?,
                c.try_into()
                    .map_err(|_| MpiErr::new(MPI_ERR_COUNT, "bad count"))?,
            ))
        })
        .collect()
}

/// Counts from a C array of `n` values.
///
/// # Safety
/// `counts` holds `n` values.
pub(crate) unsafe fn counts_of<A: Copy + TryInto<i64>>(
    counts: *const A,
    n: usize,
) -> MpiResult<Vec<i64>> {
    let zeros = vec![0i64; n];
    // SAFETY: forwarded (the displacements are unused zeros).
    Ok(unsafe { v_parts(counts, zeros.as_ptr(), n)? }
        .into_iter()
        .map(|x| x.1)
        .collect())
}

fn check_root(c: &CommObj, root: c_int) -> MpiResult<u32> {
    match u32::try_from(root) {
        Ok(r) if r < c.comm.size() => Ok(r),
        _ => Err(MpiErr::new(
            MPI_ERR_ROOT,
            format!(
                "root {root} is not a rank of the communicator (0..{})",
                c.comm.size()
            ),
        )),
    }
}

fn no_in_place(p: *const c_void, what: &str) -> MpiResult<()> {
    if in_place(p) {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            format!("MPI_IN_PLACE is not allowed as {what} here"),
        ));
    }
    Ok(())
}

/// Starts `coll` on `c`.
///
/// # Safety
/// The buffers cover what `coll` addresses and stay valid until completion.
unsafe fn start(
    c: &CommObj,
    coll: &Collective,
    send: *const u8,
    recv: *mut u8,
    fin: Option<Fin>,
) -> MpiResult<Started> {
    if BLOCKING.with(|b| b.get()) {
        // SAFETY: forwarded (the caller's contract; blocking: the buffers outlive the call).
        unsafe { c.comm.run_collective(coll, send, recv)? };
        return Ok(Started { raw: None, fin });
    }
    // SAFETY: forwarded (the caller's contract).
    let raw = unsafe { c.comm.start_collective(coll, send, recv)? };
    Ok(Started {
        raw: Some(raw),
        fin,
    })
}

/// Runs a collective body: blocking (`req` null: waits and finishes) or nonblocking (a
/// request handle written to `req`).
///
/// # Safety
/// `comm` is the caller's handle; `req` is null or writable; `f`'s contract.
pub(crate) unsafe fn drive(
    func: &str,
    comm: MPI_Comm,
    nonblocking: bool,
    req: *mut MPI_Request,
    f: impl FnOnce(&CommObj) -> MpiResult<Started>,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        with_comm(func, comm, |c| {
            if nonblocking && req.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "request is NULL"));
            }
            BLOCKING.with(|b| b.set(!nonblocking));
            let s = f(c);
            BLOCKING.with(|b| b.set(false));
            let s = s?;
            match (nonblocking, s.raw) {
                (true, Some(raw)) => {
                    let post = match s.fin {
                        Some(fin) => Post::Then(fin),
                        None => Post::None,
                    };
                    req.write(new_request(ReqObj::new(
                        Active::Raw(raw),
                        post,
                        comm,
                        false,
                    )));
                }
                (true, None) => {
                    // Not reached (`start` returns a request unless blocking); complete.
                    if let Some(fin) = s.fin {
                        fin();
                    }
                    req.write(new_request(ReqObj::new(
                        Active::Done(Ok(crate::status::St::empty())),
                        Post::None,
                        comm,
                        false,
                    )));
                }
                (false, raw) => {
                    if let Some(raw) = raw {
                        raw.wait()?;
                    }
                    if let Some(fin) = s.fin {
                        fin();
                    }
                }
            }
            Ok(())
        })
    }
}

/// Barrier.
pub(crate) unsafe fn barrier(c: &CommObj) -> MpiResult<Started> {
    // SAFETY: no buffers.
    unsafe {
        start(
            c,
            &Collective::Barrier,
            std::ptr::null(),
            std::ptr::null_mut(),
            None,
        )
    }
}

/// Broadcast.
pub(crate) unsafe fn bcast(
    c: &CommObj,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    root: c_int,
) -> MpiResult<Started> {
    count_of(count)?;
    // SAFETY: the caller's handle, validated.
    unsafe { handle::comm_datatype(dt)? };
    let root = check_root(c, root)?;
    let me_root = c.comm.rank() == root;
    // SAFETY: `buf` holds `count` elements (MPI's contract).
    let s = unsafe { side(buf, dt, &[(0, count)], me_root)? };
    let coll = Collective::Bcast {
        root,
        len: s.total(),
    };
    let ptr = s.ptr;
    let fin = if me_root { s.keeper() } else { s.unpacker() };
    // SAFETY: `ptr` covers `len` bytes until completion (temporary kept by `fin`).
    unsafe { start(c, &coll, std::ptr::null(), ptr, fin) }
}

/// Reduce (`root`: Some) or Allreduce (None).
pub(crate) unsafe fn reduce(
    c: &CommObj,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    op: MPI_Op,
    root: Option<c_int>,
) -> MpiResult<Started> {
    let n = count_of(count)?;
    // SAFETY: the caller's handle, validated.
    unsafe { handle::comm_datatype(dt)? };
    let root = root.map(|r| check_root(c, r)).transpose()?;
    // SAFETY: the caller's handles.
    let red = unsafe { reduction(op, dt, n)? };
    let ip = in_place(sbuf);
    let am_root = root.is_none_or(|r| r == c.comm.rank());
    if ip && !am_root {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            "MPI_IN_PLACE as sendbuf is allowed at the root only",
        ));
    }
    if !am_root {
        no_in_place(rbuf, "recvbuf")?;
    }
    let send = if ip {
        std::ptr::null()
    } else {
        (sbuf as *const u8).wrapping_offset(red.off)
    };
    let recv = (rbuf as *mut u8).wrapping_offset(red.off);
    let coll = match root {
        Some(root) => Collective::Reduce {
            root,
            count: red.count,
            elem: red.elem,
            op: red.op,
            in_place: ip,
        },
        None => Collective::Allreduce {
            count: red.count,
            elem: red.elem,
            op: red.op,
            in_place: ip,
        },
    };
    // SAFETY: MPI's contract: both buffers hold `count` elements (checked contiguous).
    unsafe { start(c, &coll, send, recv, None) }
}

/// Scan (`exclusive`: Exscan).
pub(crate) unsafe fn scan(
    c: &CommObj,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    op: MPI_Op,
    exclusive: bool,
) -> MpiResult<Started> {
    let n = count_of(count)?;
    // SAFETY: the caller's handles.
    let red = unsafe {
        handle::comm_datatype(dt)?;
        reduction(op, dt, n)?
    };
    let ip = in_place(sbuf);
    no_in_place(rbuf, "recvbuf")?;
    let send = if ip {
        std::ptr::null()
    } else {
        (sbuf as *const u8).wrapping_offset(red.off)
    };
    let coll = Collective::Scan {
        count: red.count,
        elem: red.elem,
        op: red.op,
        in_place: ip,
        exclusive,
    };
    // SAFETY: MPI's contract: both buffers hold `count` elements (checked contiguous).
    unsafe {
        start(
            c,
            &coll,
            send,
            (rbuf as *mut u8).wrapping_offset(red.off),
            None,
        )
    }
}

/// Reduce_scatter(_block): `counts[r]` datatype elements of the result to rank r.
pub(crate) unsafe fn reduce_scatter(
    c: &CommObj,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    counts: &[i64],
    dt: MPI_Datatype,
    op: MPI_Op,
) -> MpiResult<Started> {
    let counts = counts
        .iter()
        .map(|&v| count_of(v))
        .collect::<MpiResult<Vec<usize>>>()?;
    // SAFETY: the caller's handles.
    let red = unsafe {
        handle::comm_datatype(dt)?;
        reduction(op, dt, 1)?
    };
    let ip = in_place(sbuf);
    no_in_place(rbuf, "recvbuf")?;
    let counts: Vec<usize> = counts.iter().map(|&v| v * red.count).collect();
    let send = if ip {
        std::ptr::null()
    } else {
        (sbuf as *const u8).wrapping_offset(red.off)
    };
    let coll = Collective::ReduceScatter {
        counts,
        elem: red.elem,
        op: red.op,
        in_place: ip,
    };
    // SAFETY: MPI's contract: the buffers hold the elements described.
    unsafe {
        start(
            c,
            &coll,
            send,
            (rbuf as *mut u8).wrapping_offset(red.off),
            None,
        )
    }
}

/// Which parts of a receive buffer (root-only arguments may be garbage elsewhere).
pub(crate) type Parts<'a> = &'a dyn Fn(usize) -> MpiResult<Vec<(i64, i64)>>;

/// Gather(v): `rparts(n)` gives the root's receive regions.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gather(
    c: &CommObj,
    sbuf: *const c_void,
    scount: i64,
    stype: MPI_Datatype,
    rbuf: *mut c_void,
    rparts: Parts,
    rtype: MPI_Datatype,
    root: c_int,
) -> MpiResult<Started> {
    let root = check_root(c, root)?;
    let n = c.comm.size() as usize;
    let am_root = c.comm.rank() == root;
    let ip = in_place(sbuf);
    if ip && !am_root {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            "MPI_IN_PLACE as sendbuf is allowed at the root only",
        ));
    }
    // SAFETY: the caller's buffers and handles (MPI's contract).
    unsafe {
        let r = if am_root {
            side(rbuf, rtype, &rparts(n)?, ip)?
        } else {
            Side::empty()
        };
        let s = if ip {
            Side::empty()
        } else {
            side(sbuf, stype, &[(0, scount)], true)?
        };
        let len = if ip {
            r.blocks[root as usize].1
        } else {
            s.total()
        };
        let coll = Collective::Gather {
            root,
            len,
            blocks: r.blocks.clone(),
            in_place: ip,
        };
        let (sp, rp) = (s.ptr as *const u8, r.ptr);
        start(c, &coll, sp, rp, join(s.keeper(), r.unpacker()))
    }
}

/// Scatter(v): `sparts(n)` gives the root's send regions.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn scatter(
    c: &CommObj,
    sbuf: *const c_void,
    sparts: Parts,
    stype: MPI_Datatype,
    rbuf: *mut c_void,
    rcount: i64,
    rtype: MPI_Datatype,
    root: c_int,
) -> MpiResult<Started> {
    let root = check_root(c, root)?;
    let n = c.comm.size() as usize;
    let am_root = c.comm.rank() == root;
    let ip = in_place(rbuf);
    if ip && !am_root {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            "MPI_IN_PLACE as recvbuf is allowed at the root only",
        ));
    }
    // SAFETY: the caller's buffers and handles (MPI's contract).
    unsafe {
        let s = if am_root {
            side(sbuf, stype, &sparts(n)?, true)?
        } else {
            Side::empty()
        };
        let r = if ip {
            Side::empty()
        } else {
            side(rbuf, rtype, &[(0, rcount)], false)?
        };
        let len = if ip {
            s.blocks[root as usize].1
        } else {
            r.total()
        };
        let coll = Collective::Scatter {
            root,
            blocks: s.blocks.clone(),
            len,
            in_place: ip,
        };
        let (sp, rp) = (s.ptr as *const u8, r.ptr);
        start(c, &coll, sp, rp, join(s.keeper(), r.unpacker()))
    }
}

/// Allgather(v).
pub(crate) unsafe fn allgather(
    c: &CommObj,
    sbuf: *const c_void,
    scount: i64,
    stype: MPI_Datatype,
    rbuf: *mut c_void,
    rparts: Parts,
    rtype: MPI_Datatype,
) -> MpiResult<Started> {
    let n = c.comm.size() as usize;
    let ip = in_place(sbuf);
    // SAFETY: the caller's buffers and handles (MPI's contract).
    unsafe {
        let r = side(rbuf, rtype, &rparts(n)?, ip)?;
        let s = if ip {
            Side::empty()
        } else {
            side(sbuf, stype, &[(0, scount)], true)?
        };
        let me = c.comm.rank() as usize;
        if !ip && s.total() != r.blocks[me].1 {
            return Err(MpiErr::new(
                MPI_ERR_TRUNCATE,
                format!(
                    "this rank sends {} bytes but its block of the receive buffer has {}",
                    s.total(),
                    r.blocks[me].1
                ),
            ));
        }
        let coll = Collective::Allgather {
            blocks: r.blocks.clone(),
            in_place: ip,
        };
        let (sp, rp) = (s.ptr as *const u8, r.ptr);
        start(c, &coll, sp, rp, join(s.keeper(), r.unpacker()))
    }
}

/// Alltoall(v).
pub(crate) unsafe fn alltoall(
    c: &CommObj,
    sbuf: *const c_void,
    sparts: Parts,
    stype: MPI_Datatype,
    rbuf: *mut c_void,
    rparts: Parts,
    rtype: MPI_Datatype,
) -> MpiResult<Started> {
    let n = c.comm.size() as usize;
    let ip = in_place(sbuf);
    // SAFETY: the caller's buffers and handles (MPI's contract).
    unsafe {
        let r = side(rbuf, rtype, &rparts(n)?, ip)?;
        let s = if ip {
            Side::empty()
        } else {
            side(sbuf, stype, &sparts(n)?, true)?
        };
        let coll = Collective::Alltoall {
            sblocks: s.blocks.clone(),
            rblocks: r.blocks.clone(),
            in_place: ip,
        };
        let (sp, rp) = (s.ptr as *const u8, r.ptr);
        start(c, &coll, sp, rp, join(s.keeper(), r.unpacker()))
    }
}

/// Uniform parts of `count` elements per rank.
pub(crate) fn uni(count: i64) -> impl Fn(usize) -> MpiResult<Vec<(i64, i64)>> {
    move |n| {
        count_of(count)?;
        Ok(uniform(n, count))
    }
}

/// Parts from C count and displacement arrays.
pub(crate) fn vee<A, B>(
    counts: *const A,
    displs: *const B,
) -> impl Fn(usize) -> MpiResult<Vec<(i64, i64)>>
where
    A: Copy + TryInto<i64>,
    B: Copy + TryInto<i64>,
{
    // SAFETY (of the call inside): arrays of `n` values (MPI's contract).
    move |n| unsafe { v_parts(counts, displs, n) }
}

/// `MPI_Barrier`: returns once every rank of `comm` has entered it. Algorithm: dissemination barrier (⌈log2 n⌉ rounds of empty messages).
/// Errors: `MPI_ERR_COMM`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Barrier(comm: MPI_Comm) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Barrier", comm, false, std::ptr::null_mut(), |c| {
            barrier(c)
        })
    }
}

/// `MPI_Bcast`: copies `count` elements of `datatype` from `root`'s buffer to every rank's. Algorithm: binomial tree; scatter + ring allgather from 12 KiB on 8 or more ranks.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bcast(
    buffer: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Bcast", comm, false, std::ptr::null_mut(), |c| {
            bcast(c, buffer, i64::from(count), datatype, root)
        })
    }
}

/// `MPI_Bcast_c`: as `MPI_Bcast` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bcast_c(
    buffer: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Bcast_c", comm, false, std::ptr::null_mut(), |c| {
            bcast(c, buffer, count, datatype, root)
        })
    }
}

/// `MPI_Reduce`: combines every rank's `sendbuf` element-wise with `op` into `root`'s `recvbuf` (`MPI_IN_PLACE` at the root: its input is `recvbuf`). Algorithm: binomial tree (rooted at rank 0 and in rank order for non-commutative operations).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Reduce", comm, false, std::ptr::null_mut(), |c| {
            reduce(
                c,
                sendbuf,
                recvbuf,
                i64::from(count),
                datatype,
                op,
                Some(root),
            )
        })
    }
}

/// `MPI_Reduce_c`: as `MPI_Reduce` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Reduce_c", comm, false, std::ptr::null_mut(), |c| {
            reduce(c, sendbuf, recvbuf, count, datatype, op, Some(root))
        })
    }
}

/// `MPI_Allreduce`: combines every rank's `sendbuf` element-wise with `op` into every `recvbuf` (`MPI_IN_PLACE`: the input is `recvbuf`). Algorithm: recursive doubling; ring reduce-scatter + ring allgather from 64 KiB (commutative operations).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allreduce(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allreduce", comm, false, std::ptr::null_mut(), |c| {
            reduce(c, sendbuf, recvbuf, i64::from(count), datatype, op, None)
        })
    }
}

/// `MPI_Allreduce_c`: as `MPI_Allreduce` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allreduce_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allreduce_c", comm, false, std::ptr::null_mut(), |c| {
            reduce(c, sendbuf, recvbuf, count, datatype, op, None)
        })
    }
}

/// `MPI_Gather`: collects `sendcount` elements from every rank into `root`'s `recvbuf`, rank r's at r × `recvcount` (`MPI_IN_PLACE` at the root: its block is already there). Algorithm: linear (every rank sends to the root).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Gather(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Gather", comm, false, std::ptr::null_mut(), |c| {
            gather(
                c,
                sendbuf,
                i64::from(sendcount),
                sendtype,
                recvbuf,
                &uni(i64::from(recvcount)),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Gather_c`: as `MPI_Gather` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Gather_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Gather_c", comm, false, std::ptr::null_mut(), |c| {
            gather(
                c,
                sendbuf,
                sendcount,
                sendtype,
                recvbuf,
                &uni(recvcount),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Gatherv`: as Gather with per-rank counts and displacements (in extents of `recvtype`) at the root. Algorithm: linear.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Gatherv(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    displs: *const c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Gatherv", comm, false, std::ptr::null_mut(), |c| {
            gather(
                c,
                sendbuf,
                i64::from(sendcount),
                sendtype,
                recvbuf,
                &vee(recvcounts, displs),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Gatherv_c`: as `MPI_Gatherv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Gatherv_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Gatherv_c", comm, false, std::ptr::null_mut(), |c| {
            gather(
                c,
                sendbuf,
                sendcount,
                sendtype,
                recvbuf,
                &vee(recvcounts, displs),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Scatter`: sends block r of `root`'s `sendbuf` (`sendcount` elements at r × `sendcount`) to rank r (`MPI_IN_PLACE` as the root's `recvbuf`: it keeps its block). Algorithm: linear (the root sends to every rank).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scatter(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scatter", comm, false, std::ptr::null_mut(), |c| {
            scatter(
                c,
                sendbuf,
                &uni(i64::from(sendcount)),
                sendtype,
                recvbuf,
                i64::from(recvcount),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Scatter_c`: as `MPI_Scatter` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scatter_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scatter_c", comm, false, std::ptr::null_mut(), |c| {
            scatter(
                c,
                sendbuf,
                &uni(sendcount),
                sendtype,
                recvbuf,
                recvcount,
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Scatterv`: as Scatter with per-rank counts and displacements (in extents of `sendtype`) at the root. Algorithm: linear.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scatterv(
    sendbuf: *const c_void,
    sendcounts: *const c_int,
    displs: *const c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scatterv", comm, false, std::ptr::null_mut(), |c| {
            scatter(
                c,
                sendbuf,
                &vee(sendcounts, displs),
                sendtype,
                recvbuf,
                i64::from(recvcount),
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Scatterv_c`: as `MPI_Scatterv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scatterv_c(
    sendbuf: *const c_void,
    sendcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scatterv_c", comm, false, std::ptr::null_mut(), |c| {
            scatter(
                c,
                sendbuf,
                &vee(sendcounts, displs),
                sendtype,
                recvbuf,
                recvcount,
                recvtype,
                root,
            )
        })
    }
}

/// `MPI_Allgather`: every rank's `sendbuf` into block r of every `recvbuf` (`MPI_IN_PLACE`: each rank's block is already in place). Algorithm: ring allgather.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allgather(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allgather", comm, false, std::ptr::null_mut(), |c| {
            allgather(
                c,
                sendbuf,
                i64::from(sendcount),
                sendtype,
                recvbuf,
                &uni(i64::from(recvcount)),
                recvtype,
            )
        })
    }
}

/// `MPI_Allgather_c`: as `MPI_Allgather` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allgather_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allgather_c", comm, false, std::ptr::null_mut(), |c| {
            allgather(
                c,
                sendbuf,
                sendcount,
                sendtype,
                recvbuf,
                &uni(recvcount),
                recvtype,
            )
        })
    }
}

/// `MPI_Allgatherv`: as Allgather with per-rank counts and displacements. Algorithm: ring allgather.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allgatherv(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    displs: *const c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allgatherv", comm, false, std::ptr::null_mut(), |c| {
            allgather(
                c,
                sendbuf,
                i64::from(sendcount),
                sendtype,
                recvbuf,
                &vee(recvcounts, displs),
                recvtype,
            )
        })
    }
}

/// `MPI_Allgatherv_c`: as `MPI_Allgatherv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Allgatherv_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Allgatherv_c", comm, false, std::ptr::null_mut(), |c| {
            allgather(
                c,
                sendbuf,
                sendcount,
                sendtype,
                recvbuf,
                &vee(recvcounts, displs),
                recvtype,
            )
        })
    }
}

/// `MPI_Alltoall`: block j of rank i's `sendbuf` to block i of rank j's `recvbuf` (`MPI_IN_PLACE`: both in `recvbuf`). Algorithm: pairwise exchange.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Alltoall(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Alltoall", comm, false, std::ptr::null_mut(), |c| {
            alltoall(
                c,
                sendbuf,
                &uni(i64::from(sendcount)),
                sendtype,
                recvbuf,
                &uni(i64::from(recvcount)),
                recvtype,
            )
        })
    }
}

/// `MPI_Alltoall_c`: as `MPI_Alltoall` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Alltoall_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Alltoall_c", comm, false, std::ptr::null_mut(), |c| {
            alltoall(
                c,
                sendbuf,
                &uni(sendcount),
                sendtype,
                recvbuf,
                &uni(recvcount),
                recvtype,
            )
        })
    }
}

/// `MPI_Alltoallv`: as Alltoall with per-rank counts and displacements on both sides. Algorithm: pairwise exchange.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Alltoallv(
    sendbuf: *const c_void,
    sendcounts: *const c_int,
    sdispls: *const c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    rdispls: *const c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Alltoallv", comm, false, std::ptr::null_mut(), |c| {
            alltoall(
                c,
                sendbuf,
                &vee(sendcounts, sdispls),
                sendtype,
                recvbuf,
                &vee(recvcounts, rdispls),
                recvtype,
            )
        })
    }
}

/// `MPI_Alltoallv_c`: as `MPI_Alltoallv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Alltoallv_c(
    sendbuf: *const c_void,
    sendcounts: *const MPI_Count,
    sdispls: *const MPI_Aint,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    rdispls: *const MPI_Aint,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Alltoallv_c", comm, false, std::ptr::null_mut(), |c| {
            alltoall(
                c,
                sendbuf,
                &vee(sendcounts, sdispls),
                sendtype,
                recvbuf,
                &vee(recvcounts, rdispls),
                recvtype,
            )
        })
    }
}

/// `MPI_Reduce_scatter_block`: reduces n × `recvcount` elements element-wise with `op` and leaves block r of the result in rank r's `recvbuf` (`MPI_IN_PLACE`: the input is `recvbuf`). Algorithm: ring reduce-scatter (commutative), else binomial reduce in rank order + linear scatter.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_scatter_block(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcount: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive(
            "MPI_Reduce_scatter_block",
            comm,
            false,
            std::ptr::null_mut(),
            |c| {
                reduce_scatter(
                    c,
                    sendbuf,
                    recvbuf,
                    &vec![i64::from(recvcount); c.comm.size() as usize],
                    datatype,
                    op,
                )
            },
        )
    }
}

/// `MPI_Reduce_scatter_block_c`: as `MPI_Reduce_scatter_block` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_scatter_block_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive(
            "MPI_Reduce_scatter_block_c",
            comm,
            false,
            std::ptr::null_mut(),
            |c| {
                reduce_scatter(
                    c,
                    sendbuf,
                    recvbuf,
                    &vec![recvcount; c.comm.size() as usize],
                    datatype,
                    op,
                )
            },
        )
    }
}

/// `MPI_Reduce_scatter`: as Reduce_scatter_block with `recvcounts[r]` elements to rank r. Algorithm: ring reduce-scatter (commutative), else binomial reduce in rank order + linear scatter.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_scatter(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive(
            "MPI_Reduce_scatter",
            comm,
            false,
            std::ptr::null_mut(),
            |c| {
                reduce_scatter(
                    c,
                    sendbuf,
                    recvbuf,
                    &counts_of(recvcounts, c.comm.size() as usize)?,
                    datatype,
                    op,
                )
            },
        )
    }
}

/// `MPI_Reduce_scatter_c`: as `MPI_Reduce_scatter` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_scatter_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive(
            "MPI_Reduce_scatter_c",
            comm,
            false,
            std::ptr::null_mut(),
            |c| {
                reduce_scatter(
                    c,
                    sendbuf,
                    recvbuf,
                    &counts_of(recvcounts, c.comm.size() as usize)?,
                    datatype,
                    op,
                )
            },
        )
    }
}

/// `MPI_Scan`: inclusive prefix reduction: rank r gets `sendbuf` of ranks 0..=r combined with `op` in rank order (`MPI_IN_PLACE`: the input is `recvbuf`). Algorithm: recursive doubling.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scan(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scan", comm, false, std::ptr::null_mut(), |c| {
            scan(c, sendbuf, recvbuf, i64::from(count), datatype, op, false)
        })
    }
}

/// `MPI_Scan_c`: as `MPI_Scan` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Scan_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Scan_c", comm, false, std::ptr::null_mut(), |c| {
            scan(c, sendbuf, recvbuf, count, datatype, op, false)
        })
    }
}

/// `MPI_Exscan`: exclusive prefix reduction: rank r gets ranks 0..r combined; rank 0's `recvbuf` is left unchanged. Algorithm: recursive doubling.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Exscan(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Exscan", comm, false, std::ptr::null_mut(), |c| {
            scan(c, sendbuf, recvbuf, i64::from(count), datatype, op, true)
        })
    }
}

/// `MPI_Exscan_c`: as `MPI_Exscan` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Exscan_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Exscan_c", comm, false, std::ptr::null_mut(), |c| {
            scan(c, sendbuf, recvbuf, count, datatype, op, true)
        })
    }
}
