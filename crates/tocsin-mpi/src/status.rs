//! `MPI_Status` contents (MPI 5.0 ABI: 8 ints, `MPI_internal` implementation-defined).
//!
//! Owns the layout of the internal words: `MPI_internal[0..2]` the received byte count
//! (64 bits, low word first, written as two ints: the struct is only int-aligned),
//! `MPI_internal[2]` the cancelled flag. Must not know about requests.

use std::ffi::c_int;

use crate::abi::*;

/// What a status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct St {
    /// MPI_SOURCE.
    pub source: c_int,
    /// MPI_TAG.
    pub tag: c_int,
    /// Bytes received (for a send: 0).
    pub bytes: u64,
    /// Cancelled (MPI_Test_cancelled).
    pub cancelled: bool,
    /// MPI_ERROR (set only by the multiple-completion calls).
    pub error: c_int,
}

impl St {
    /// The "empty" status of MPI-4.1 §3.7.3: source MPI_ANY_SOURCE, tag MPI_ANY_TAG, count 0
    /// (also a receive from MPI_PROC_NULL, whose source is MPI_PROC_NULL).
    pub fn empty() -> St {
        St {
            source: MPI_ANY_SOURCE,
            tag: MPI_ANY_TAG,
            bytes: 0,
            cancelled: false,
            error: MPI_SUCCESS,
        }
    }

    /// The status of a completed tocsin request.
    pub fn from_tocsin(s: &tocsin::Status) -> St {
        St {
            source: s.source as c_int,
            tag: s.tag,
            bytes: s.len as u64,
            cancelled: false,
            error: MPI_SUCCESS,
        }
    }
}

/// Writes `s` to `st` unless it is MPI_STATUS_IGNORE (null). `MPI_ERROR` is written only
/// when `with_error` (MPI leaves it alone in single-completion calls).
///
/// # Safety
/// `st` is null or points to a writable `MPI_Status`.
pub unsafe fn write(st: *mut MPI_Status, s: &St, with_error: bool) {
    if st.is_null() {
        return;
    }
    // SAFETY: non-null, writable by the caller's contract; field writes of ints.
    unsafe {
        (*st).MPI_SOURCE = s.source;
        (*st).MPI_TAG = s.tag;
        if with_error {
            (*st).MPI_ERROR = s.error;
        }
        (*st).MPI_internal[0] = s.bytes as u32 as c_int;
        (*st).MPI_internal[1] = (s.bytes >> 32) as u32 as c_int;
        (*st).MPI_internal[2] = c_int::from(s.cancelled);
    }
}

/// The byte count a status holds.
pub fn bytes(st: &MPI_Status) -> u64 {
    (st.MPI_internal[0] as u32 as u64) | ((st.MPI_internal[1] as u32 as u64) << 32)
}

/// Sets the byte count (MPI_Status_set_elements).
pub fn set_bytes(st: &mut MPI_Status, b: u64) {
    st.MPI_internal[0] = b as u32 as c_int;
    st.MPI_internal[1] = (b >> 32) as u32 as c_int;
}

/// The cancelled flag.
pub fn cancelled(st: &MPI_Status) -> bool {
    st.MPI_internal[2] != 0
}

/// Sets the cancelled flag (MPI_Status_set_cancelled).
pub fn set_cancelled(st: &mut MPI_Status, c: bool) {
    st.MPI_internal[2] = c_int::from(c);
}
