//! Packing and unpacking typed buffers (MPI-4.1/5.0 §5.2 "Pack and Unpack").
//!
//! The packed form of `count` elements of a type is the concatenation, in type-map order, of
//! their data bytes: `count * size` bytes, no header, no padding (the "native"
//! representation; all processes of tocsin share one architecture). The communication layer
//! packs a large message chunk by chunk with [`pack_range`] / [`unpack_range`] (any byte
//! offset and length), or sends the segments in place with [`for_each_segment`].
//!
//! Buffer addressing follows MPI: a buffer address `buf` with `count` elements of `dt`
//! refers to the bytes `buf + k * extent + d` for each element `k` in `0..count` and each
//! block displacement `d` of the type map. The bytes touched therefore lie in
//! `[buf + true_lb + min(0, (count-1)*extent), buf + true_lb + true_extent + max(0,
//! (count-1)*extent))`, which for a nonnegative extent is `buf + true_lb` to
//! `buf + true_lb + true_extent + (count-1)*extent`.

use super::{Datatype, DtypeError};

/// `MPI_Pack_size` (§5.2): bytes needed to pack `count` elements of `dt` (`count * size`).
///
/// Errors: [`DtypeError::Overflow`] if that does not fit in `usize`.
pub fn pack_size(dt: &Datatype, count: usize) -> Result<usize, DtypeError> {
    count.checked_mul(dt.size).ok_or(DtypeError::Overflow)
}

/// Calls `f(displacement, len)` for each contiguous run of memory holding the packed bytes
/// `offset .. offset + len` of `count` elements of `dt`, in packing order. Displacements are
/// in bytes relative to the buffer address; adjacent runs are coalesced. The range is
/// clipped to the `count * size` bytes of the message. Returns the number of bytes covered
/// (the sum of the lengths passed to `f`).
///
/// Safe: it computes addresses, it does not access memory. Stops early (returning fewer
/// bytes) only if a displacement overflows `isize`, which no valid buffer allows.
pub fn for_each_segment(
    dt: &Datatype,
    count: usize,
    offset: usize,
    len: usize,
    mut f: impl FnMut(isize, usize),
) -> usize {
    let total = count.saturating_mul(dt.size);
    if offset >= total || len == 0 {
        return 0;
    }
    let len = len.min(total - offset);
    if dt.is_contiguous() {
        // One block, elements back to back: the message is one run from the first block.
        let Some(start) = isize::try_from(offset)
            .ok()
            .and_then(|o| dt.blocks[0].disp.checked_add(o))
        else {
            return 0;
        };
        f(start, len);
        return len;
    }
    let ext = dt.extent();
    let within = offset % dt.size;
    // The block holding byte `within` of an element: the last one starting at or before it.
    let mut idx = dt.prefix.partition_point(|&p| p <= within) - 1;
    let mut skip = within - dt.prefix[idx];
    let Some(mut base) = isize::try_from(offset / dt.size)
        .ok()
        .and_then(|e| e.checked_mul(ext))
    else {
        return 0;
    };
    let mut done = 0usize;
    // The run not yet passed to `f` (coalescing adjacent runs).
    let mut pending: Option<(isize, usize)> = None;
    while done < len {
        let b = dt.blocks[idx];
        let take = (b.len - skip).min(len - done);
        let Some(at) = base
            .checked_add(b.disp)
            .and_then(|a| a.checked_add(skip as isize))
        else {
            break;
        };
        pending = match pending {
            Some((pd, pl)) if pd.checked_add(pl as isize) == Some(at) => Some((pd, pl + take)),
            Some((pd, pl)) => {
                f(pd, pl);
                Some((at, take))
            }
            None => Some((at, take)),
        };
        done += take;
        skip = 0;
        idx += 1;
        if idx == dt.blocks.len() {
            idx = 0;
            match base.checked_add(ext) {
                Some(b) => base = b,
                None => break,
            }
        }
    }
    if let Some((pd, pl)) = pending {
        f(pd, pl);
    }
    done
}

/// Packs the bytes `offset .. offset + dst.len()` of the packed form of `count` elements of
/// `dt` read from `src` into `dst` (clipped to the message's `count * size` bytes). Returns
/// the number of bytes written, at the start of `dst`.
///
/// # Safety
///
/// For every element `k` in `0..count` whose packed bytes intersect the range, the `len`
/// bytes at `src + k * extent + d` of each block `(d, len)` of the type map must be readable
/// (all of them lie between `src + true_lb + min(0, (count-1)*extent)` and `src + true_lb +
/// true_extent + max(0, (count-1)*extent)`), and must not be written concurrently. They may
/// overlap `dst` only if they are the same bytes at the same place (a no-op copy).
pub unsafe fn pack_range(
    dt: &Datatype,
    count: usize,
    src: *const u8,
    offset: usize,
    dst: &mut [u8],
) -> usize {
    let out = dst.as_mut_ptr();
    let cap = dst.len();
    let mut written = 0usize;
    for_each_segment(dt, count, offset, cap, |d, len| {
        // SAFETY: the caller guarantees `src + d .. + len` is readable (it is a run of the
        // type map of an element in range); `written + len <= cap` because for_each_segment
        // covers at most `cap` bytes, so the destination is inside `dst`. `ptr::copy`
        // tolerates overlap.
        unsafe { std::ptr::copy(src.wrapping_offset(d), out.add(written), len) };
        written += len;
    })
}

/// Packs all of `count` elements of `dt` from `src` into `dst`, or as many leading packed
/// bytes as fit if `dst` is shorter than `count * size`. Returns the number of bytes
/// written. Contiguous types (one block, extent = size) take a single copy.
///
/// # Safety
///
/// As [`pack_range`] with offset 0: every byte of the type map of the elements packed must
/// be readable at `src + k * extent + d`, i.e. the range `src + true_lb .. src + true_lb +
/// true_extent + (count-1) * extent` for a nonnegative extent.
pub unsafe fn pack(dt: &Datatype, count: usize, src: *const u8, dst: &mut [u8]) -> usize {
    // SAFETY: forwarded to the caller's guarantee, same contract.
    unsafe { pack_range(dt, count, src, 0, dst) }
}

/// Unpacks the packed bytes `offset .. offset + src.len()` of `count` elements of `dt` (the
/// range is clipped to the message's `count * size` bytes) from `src` into the typed buffer
/// at `dst`. Returns the number of bytes consumed from the start of `src`.
///
/// # Safety
///
/// For every element `k` whose packed bytes intersect the range, the `len` bytes at
/// `dst + k * extent + d` of each block `(d, len)` of the type map must be writable (they
/// lie between `dst + true_lb + min(0, (count-1)*extent)` and `dst + true_lb + true_extent +
/// max(0, (count-1)*extent)`), not accessed concurrently, and must not overlap `src`. If the
/// type map has overlapping entries (erroneous for a receive), the last write wins.
pub unsafe fn unpack_range(
    dt: &Datatype,
    count: usize,
    src: &[u8],
    offset: usize,
    dst: *mut u8,
) -> usize {
    let inp = src.as_ptr();
    let mut read = 0usize;
    for_each_segment(dt, count, offset, src.len(), |d, len| {
        // SAFETY: `read + len <= src.len()` (for_each_segment covers at most that many
        // bytes) so the source is inside `src`; the caller guarantees `dst + d .. + len` is
        // writable and disjoint from `src`.
        unsafe { std::ptr::copy(inp.add(read), dst.wrapping_offset(d), len) };
        read += len;
    })
}

/// Unpacks `src` (the leading packed bytes of `count` elements of `dt`; at most
/// `count * size` of them are used) into the typed buffer at `dst`. Returns the number of
/// bytes consumed. A short `src` fills the leading part of the type map, as a receive of a
/// shorter message does.
///
/// # Safety
///
/// As [`unpack_range`] with offset 0: the type map bytes of the elements filled must be
/// writable at `dst + k * extent + d` (for a nonnegative extent, within `dst + true_lb ..
/// dst + true_lb + true_extent + (count-1) * extent`) and disjoint from `src`.
pub unsafe fn unpack(dt: &Datatype, count: usize, src: &[u8], dst: *mut u8) -> usize {
    // SAFETY: forwarded to the caller's guarantee, same contract.
    unsafe { unpack_range(dt, count, src, 0, dst) }
}

/// `MPI_Pack(inbuf, incount, datatype, outbuf, outsize, position, comm)` (§5.2): packs all
/// `count` elements of `dt` from `src` into `outbuf` at `*position` and advances
/// `*position` by `count * size`.
///
/// Errors: [`DtypeError::Truncated`] if `outbuf` has fewer than `count * size` bytes after
/// `*position` (nothing is written), [`DtypeError::Overflow`].
///
/// # Safety
///
/// As [`pack`]: the type map bytes of the `count` elements must be readable at `src`.
pub unsafe fn pack_at(
    dt: &Datatype,
    count: usize,
    src: *const u8,
    outbuf: &mut [u8],
    position: &mut usize,
) -> Result<(), DtypeError> {
    let needed = pack_size(dt, count)?;
    let available = outbuf.len().saturating_sub(*position);
    if needed > available {
        return Err(DtypeError::Truncated { needed, available });
    }
    let window = &mut outbuf[*position..*position + needed];
    // SAFETY: forwarded to the caller's guarantee; `window` holds exactly the packed size.
    let n = unsafe { pack_range(dt, count, src, 0, window) };
    *position += n;
    Ok(())
}

/// `MPI_Unpack(inbuf, insize, position, outbuf, outcount, datatype, comm)` (§5.2): unpacks
/// `count` elements of `dt` from `inbuf` at `*position` into the typed buffer `dst` and
/// advances `*position` by `count * size`.
///
/// Errors: [`DtypeError::Truncated`] if `inbuf` has fewer than `count * size` bytes after
/// `*position` (nothing is written), [`DtypeError::Overflow`].
///
/// # Safety
///
/// As [`unpack`]: the type map bytes of the `count` elements must be writable at `dst`
/// and disjoint from `inbuf`.
pub unsafe fn unpack_at(
    inbuf: &[u8],
    position: &mut usize,
    dt: &Datatype,
    count: usize,
    dst: *mut u8,
) -> Result<(), DtypeError> {
    let needed = pack_size(dt, count)?;
    let available = inbuf.len().saturating_sub(*position);
    if needed > available {
        return Err(DtypeError::Truncated { needed, available });
    }
    let window = &inbuf[*position..*position + needed];
    // SAFETY: forwarded to the caller's guarantee; `window` holds exactly the packed size.
    let n = unsafe { unpack_range(dt, count, window, 0, dst) };
    *position += n;
    Ok(())
}
