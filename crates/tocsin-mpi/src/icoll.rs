//! Nonblocking collective operations of the C API (MPI-4.1 §6.12): `MPI_Ibarrier`,
//! `MPI_Ibcast`, `MPI_Ireduce`, `MPI_Iallreduce`, `MPI_Igather(v)`, `MPI_Iscatter(v)`,
//! `MPI_Iallgather(v)`, `MPI_Ialltoall(v)`, `MPI_Ireduce_scatter(_block)`, `MPI_Iscan`,
//! `MPI_Iexscan`, with their `_c` forms.
//!
//! Each starts the same schedule as its blocking twin ([`crate::coll`]) and returns a
//! request object; the engine advances it from its interrupt or signal handler, or its
//! progress thread, while the application computes (user reduction operations run only in
//! ordinary context: in MPI calls or on the progress thread). Temporaries of non-contiguous
//! datatypes are kept with the request and unpacked when it completes (`Post::Then`).

use std::ffi::{c_int, c_void};

use crate::abi::*;
use crate::coll::{
    allgather, alltoall, barrier, bcast, counts_of, drive, gather, reduce, reduce_scatter, scan,
    scatter, uni, vee,
};

/// `MPI_Ibarrier`: starts, without waiting, the operation of `MPI_Barrier`: returns once every rank of `comm` has entered it.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: dissemination barrier (⌈log2 n⌉ rounds of empty messages).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ibarrier(comm: MPI_Comm, request: *mut MPI_Request) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe { drive("MPI_Ibarrier", comm, true, request, |c| barrier(c)) }
}

/// `MPI_Ibcast`: starts, without waiting, the operation of `MPI_Bcast`: copies `count` elements of `datatype` from `root`'s buffer to every rank's.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: binomial tree; scatter + ring allgather from 12 KiB on 8 or more ranks.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ibcast(
    buffer: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ibcast", comm, true, request, |c| {
            bcast(c, buffer, i64::from(count), datatype, root)
        })
    }
}

/// `MPI_Ibcast_c`: as `MPI_Ibcast` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ibcast_c(
    buffer: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ibcast_c", comm, true, request, |c| {
            bcast(c, buffer, count, datatype, root)
        })
    }
}

/// `MPI_Ireduce`: starts, without waiting, the operation of `MPI_Reduce`: combines every rank's `sendbuf` element-wise with `op` into `root`'s `recvbuf` (`MPI_IN_PLACE` at the root: its input is `recvbuf`).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: binomial tree (rooted at rank 0 and in rank order for non-commutative operations).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce", comm, true, request, |c| {
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

/// `MPI_Ireduce_c`: as `MPI_Ireduce` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce_c", comm, true, request, |c| {
            reduce(c, sendbuf, recvbuf, count, datatype, op, Some(root))
        })
    }
}

/// `MPI_Iallreduce`: starts, without waiting, the operation of `MPI_Allreduce`: combines every rank's `sendbuf` element-wise with `op` into every `recvbuf` (`MPI_IN_PLACE`: the input is `recvbuf`).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: recursive doubling; ring reduce-scatter + ring allgather from 64 KiB (commutative operations).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallreduce(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallreduce", comm, true, request, |c| {
            reduce(c, sendbuf, recvbuf, i64::from(count), datatype, op, None)
        })
    }
}

/// `MPI_Iallreduce_c`: as `MPI_Iallreduce` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallreduce_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallreduce_c", comm, true, request, |c| {
            reduce(c, sendbuf, recvbuf, count, datatype, op, None)
        })
    }
}

/// `MPI_Igather`: starts, without waiting, the operation of `MPI_Gather`: collects `sendcount` elements from every rank into `root`'s `recvbuf`, rank r's at r × `recvcount` (`MPI_IN_PLACE` at the root: its block is already there).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: linear (every rank sends to the root).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Igather(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Igather", comm, true, request, |c| {
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

/// `MPI_Igather_c`: as `MPI_Igather` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Igather_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Igather_c", comm, true, request, |c| {
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

/// `MPI_Igatherv`: starts, without waiting, the operation of `MPI_Gatherv`: as Gather with per-rank counts and displacements (in extents of `recvtype`) at the root.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: linear.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Igatherv(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    displs: *const c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Igatherv", comm, true, request, |c| {
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

/// `MPI_Igatherv_c`: as `MPI_Igatherv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Igatherv_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Igatherv_c", comm, true, request, |c| {
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

/// `MPI_Iscatter`: starts, without waiting, the operation of `MPI_Scatter`: sends block r of `root`'s `sendbuf` (`sendcount` elements at r × `sendcount`) to rank r (`MPI_IN_PLACE` as the root's `recvbuf`: it keeps its block).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: linear (the root sends to every rank).
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscatter(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscatter", comm, true, request, |c| {
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

/// `MPI_Iscatter_c`: as `MPI_Iscatter` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscatter_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscatter_c", comm, true, request, |c| {
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

/// `MPI_Iscatterv`: starts, without waiting, the operation of `MPI_Scatterv`: as Scatter with per-rank counts and displacements (in extents of `sendtype`) at the root.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: linear.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_ROOT`, `MPI_ERR_BUFFER`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscatterv(
    sendbuf: *const c_void,
    sendcounts: *const c_int,
    displs: *const c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscatterv", comm, true, request, |c| {
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

/// `MPI_Iscatterv_c`: as `MPI_Iscatterv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscatterv_c(
    sendbuf: *const c_void,
    sendcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    root: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscatterv_c", comm, true, request, |c| {
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

/// `MPI_Iallgather`: starts, without waiting, the operation of `MPI_Allgather`: every rank's `sendbuf` into block r of every `recvbuf` (`MPI_IN_PLACE`: each rank's block is already in place).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: ring allgather.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallgather(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallgather", comm, true, request, |c| {
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

/// `MPI_Iallgather_c`: as `MPI_Iallgather` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallgather_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallgather_c", comm, true, request, |c| {
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

/// `MPI_Iallgatherv`: starts, without waiting, the operation of `MPI_Allgatherv`: as Allgather with per-rank counts and displacements.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: ring allgather.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallgatherv(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    displs: *const c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallgatherv", comm, true, request, |c| {
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

/// `MPI_Iallgatherv_c`: as `MPI_Iallgatherv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iallgatherv_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    displs: *const MPI_Aint,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iallgatherv_c", comm, true, request, |c| {
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

/// `MPI_Ialltoall`: starts, without waiting, the operation of `MPI_Alltoall`: block j of rank i's `sendbuf` to block i of rank j's `recvbuf` (`MPI_IN_PLACE`: both in `recvbuf`).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: pairwise exchange.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ialltoall(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ialltoall", comm, true, request, |c| {
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

/// `MPI_Ialltoall_c`: as `MPI_Ialltoall` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ialltoall_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ialltoall_c", comm, true, request, |c| {
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

/// `MPI_Ialltoallv`: starts, without waiting, the operation of `MPI_Alltoallv`: as Alltoall with per-rank counts and displacements on both sides.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: pairwise exchange.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_TRUNCATE`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ialltoallv(
    sendbuf: *const c_void,
    sendcounts: *const c_int,
    sdispls: *const c_int,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    rdispls: *const c_int,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ialltoallv", comm, true, request, |c| {
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

/// `MPI_Ialltoallv_c`: as `MPI_Ialltoallv` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ialltoallv_c(
    sendbuf: *const c_void,
    sendcounts: *const MPI_Count,
    sdispls: *const MPI_Aint,
    sendtype: MPI_Datatype,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    rdispls: *const MPI_Aint,
    recvtype: MPI_Datatype,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ialltoallv_c", comm, true, request, |c| {
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

/// `MPI_Ireduce_scatter_block`: starts, without waiting, the operation of `MPI_Reduce_scatter_block`: reduces n × `recvcount` elements element-wise with `op` and leaves block r of the result in rank r's `recvbuf` (`MPI_IN_PLACE`: the input is `recvbuf`).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: ring reduce-scatter (commutative), else binomial reduce in rank order + linear scatter.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce_scatter_block(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcount: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce_scatter_block", comm, true, request, |c| {
            reduce_scatter(
                c,
                sendbuf,
                recvbuf,
                &vec![i64::from(recvcount); c.comm.size() as usize],
                datatype,
                op,
            )
        })
    }
}

/// `MPI_Ireduce_scatter_block_c`: as `MPI_Ireduce_scatter_block` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce_scatter_block_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce_scatter_block_c", comm, true, request, |c| {
            reduce_scatter(
                c,
                sendbuf,
                recvbuf,
                &vec![recvcount; c.comm.size() as usize],
                datatype,
                op,
            )
        })
    }
}

/// `MPI_Ireduce_scatter`: starts, without waiting, the operation of `MPI_Reduce_scatter`: as Reduce_scatter_block with `recvcounts[r]` elements to rank r.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: ring reduce-scatter (commutative), else binomial reduce in rank order + linear scatter.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce_scatter(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcounts: *const c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce_scatter", comm, true, request, |c| {
            reduce_scatter(
                c,
                sendbuf,
                recvbuf,
                &counts_of(recvcounts, c.comm.size() as usize)?,
                datatype,
                op,
            )
        })
    }
}

/// `MPI_Ireduce_scatter_c`: as `MPI_Ireduce_scatter` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ireduce_scatter_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    recvcounts: *const MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Ireduce_scatter_c", comm, true, request, |c| {
            reduce_scatter(
                c,
                sendbuf,
                recvbuf,
                &counts_of(recvcounts, c.comm.size() as usize)?,
                datatype,
                op,
            )
        })
    }
}

/// `MPI_Iscan`: starts, without waiting, the operation of `MPI_Scan`: inclusive prefix reduction: rank r gets `sendbuf` of ranks 0..=r combined with `op` in rank order (`MPI_IN_PLACE`: the input is `recvbuf`).
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: recursive doubling.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscan(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscan", comm, true, request, |c| {
            scan(c, sendbuf, recvbuf, i64::from(count), datatype, op, false)
        })
    }
}

/// `MPI_Iscan_c`: as `MPI_Iscan` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iscan_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iscan_c", comm, true, request, |c| {
            scan(c, sendbuf, recvbuf, count, datatype, op, false)
        })
    }
}

/// `MPI_Iexscan`: starts, without waiting, the operation of `MPI_Exscan`: exclusive prefix reduction: rank r gets ranks 0..r combined; rank 0's `recvbuf` is left unchanged.
/// Returns a request completed by `MPI_Wait`/`MPI_Test`; the buffers are lent until
/// then. It progresses in tocsin's engine (interrupt handler, signal handler or
/// progress thread) while the application computes. Algorithm: recursive doubling.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`, `MPI_ERR_ARG` (NULL request).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iexscan(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iexscan", comm, true, request, |c| {
            scan(c, sendbuf, recvbuf, i64::from(count), datatype, op, true)
        })
    }
}

/// `MPI_Iexscan_c`: as `MPI_Iexscan` with `MPI_Count` counts and `MPI_Aint` displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iexscan_c(
    sendbuf: *const c_void,
    recvbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's buffers and handles, lent as MPI specifies until completion.
    unsafe {
        drive("MPI_Iexscan_c", comm, true, request, |c| {
            scan(c, sendbuf, recvbuf, count, datatype, op, true)
        })
    }
}
