//! Probes (MPI-4.1 §3.8.1): `MPI_Probe` and `MPI_Iprobe`.
//!
//! Matched probes (`MPI_Mprobe`, `MPI_Improbe`, `MPI_Mrecv`, `MPI_Imrecv`) are not
//! implemented: tocsin has no primitive that removes a message from the matching queue
//! without receiving it; they stay stubs (`MPI_ERR_UNSUPPORTED_OPERATION`).

use std::ffi::c_int;

use crate::abi::*;
use crate::error::{with_comm, MpiErr};
use crate::p2p::{proc_null_status, recv_tag, source_rank};
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
