//! Info objects (MPI-4.1 §10): `MPI_Info_create`, `set`, `get`, `get_string`,
//! `get_valuelen`, `delete`, `get_nkeys`, `get_nthkey`, `dup`, `free`. Ordered
//! (key, value) string pairs; errors go to MPI_COMM_WORLD's handler.

use std::ffi::{c_char, c_int, CStr};

use crate::abi::*;
use crate::error::{finish, MpiErr, MpiResult};
use crate::handle::{self, InfoObj};

fn obj<'a>(h: MPI_Info) -> MpiResult<&'a InfoObj> {
    // SAFETY: the caller's handle (magic-checked).
    unsafe { handle::info(h)? }
        .ok_or_else(|| MpiErr::new(MPI_ERR_INFO, "MPI_INFO_NULL is not an info object"))
}

/// A key from C, checked (non-NULL, not empty, shorter than MPI_MAX_INFO_KEY).
///
/// # Safety
/// `key` NULL or a NUL-terminated string.
unsafe fn key_of(key: *const c_char) -> MpiResult<String> {
    if key.is_null() {
        return Err(MpiErr::new(MPI_ERR_INFO_KEY, "key is NULL"));
    }
    // SAFETY: the caller's contract.
    let k = unsafe { CStr::from_ptr(key) }
        .to_string_lossy()
        .into_owned();
    if k.is_empty() || k.len() >= MPI_MAX_INFO_KEY as usize {
        return Err(MpiErr::new(
            MPI_ERR_INFO_KEY,
            format!(
                "key of {} bytes: keys have 1..{} bytes",
                k.len(),
                MPI_MAX_INFO_KEY - 1
            ),
        ));
    }
    Ok(k)
}

fn get(i: &InfoObj, k: &str) -> Option<String> {
    let kv = i.kv.lock().unwrap_or_else(|p| p.into_inner());
    kv.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
}

/// Copies at most `max` bytes of `s` and a NUL to `buf`.
///
/// # Safety
/// `buf` has room for `max + 1` bytes.
unsafe fn copy_out(s: &str, buf: *mut c_char, max: usize) {
    let n = s.len().min(max);
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
}

/// `MPI_Info_create`: a new, empty info object.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_create(info: *mut MPI_Info) -> c_int {
    let r = if info.is_null() {
        Err(MpiErr::new(MPI_ERR_ARG, "info is NULL"))
    } else {
        // SAFETY: non-null pointer from the caller.
        unsafe { info.write(handle::new_info(Vec::new())) };
        Ok(())
    };
    finish("MPI_Info_create", None, r)
}

/// `MPI_Info_set`: sets `key` to `value` (replacing). Errors: `MPI_ERR_INFO`,
/// `MPI_ERR_INFO_KEY`, `MPI_ERR_INFO_VALUE` (NULL or MPI_MAX_INFO_VAL bytes or longer).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_set(
    info: MPI_Info,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        // SAFETY: NUL-terminated strings from the caller.
        let k = unsafe { key_of(key)? };
        if value.is_null() {
            return Err(MpiErr::new(MPI_ERR_INFO_VALUE, "value is NULL"));
        }
        // SAFETY: as above.
        let v = unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned();
        if v.len() >= MPI_MAX_INFO_VAL as usize {
            return Err(MpiErr::new(
                MPI_ERR_INFO_VALUE,
                format!(
                    "value of {} bytes: at most {}",
                    v.len(),
                    MPI_MAX_INFO_VAL - 1
                ),
            ));
        }
        let mut kv = i.kv.lock().unwrap_or_else(|p| p.into_inner());
        match kv.iter_mut().find(|(a, _)| *a == k) {
            Some(e) => e.1 = v,
            None => kv.push((k, v)),
        }
        Ok(())
    })();
    finish("MPI_Info_set", None, r)
}

/// `MPI_Info_get`: the value of `key` (at most `valuelen` bytes and a NUL) and whether it
/// is set. Errors: `MPI_ERR_INFO`, `MPI_ERR_INFO_KEY`, `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_get(
    info: MPI_Info,
    key: *const c_char,
    valuelen: c_int,
    value: *mut c_char,
    flag: *mut c_int,
) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        // SAFETY: NUL-terminated string from the caller.
        let k = unsafe { key_of(key)? };
        let max = usize::try_from(valuelen)
            .map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("valuelen {valuelen} is negative")))?;
        if flag.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "flag is NULL"));
        }
        match get(i, &k) {
            Some(v) => {
                if value.is_null() {
                    return Err(MpiErr::new(MPI_ERR_ARG, "value is NULL"));
                }
                // SAFETY: `value` has room for `valuelen + 1` bytes (MPI's contract);
                // `flag` non-null.
                unsafe {
                    copy_out(&v, value, max);
                    flag.write(1);
                }
            }
            // SAFETY: non-null.
            None => unsafe { flag.write(0) },
        }
        Ok(())
    })();
    finish("MPI_Info_get", None, r)
}

/// `MPI_Info_get_string`: the value of `key` into a buffer of `*buflen` bytes (truncated,
/// NUL-terminated); `*buflen` becomes the value's length plus one.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_get_string(
    info: MPI_Info,
    key: *const c_char,
    buflen: *mut c_int,
    value: *mut c_char,
    flag: *mut c_int,
) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        // SAFETY: NUL-terminated string from the caller.
        let k = unsafe { key_of(key)? };
        if flag.is_null() || buflen.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "flag or buflen is NULL"));
        }
        // SAFETY: non-null pointers; `value` has `*buflen` bytes (MPI's contract).
        unsafe {
            match get(i, &k) {
                Some(v) => {
                    let room = usize::try_from(buflen.read()).unwrap_or(0);
                    if room > 0 && !value.is_null() {
                        copy_out(&v, value, room - 1);
                    }
                    buflen.write(c_int::try_from(v.len() + 1).unwrap_or(c_int::MAX));
                    flag.write(1);
                }
                None => flag.write(0),
            }
        }
        Ok(())
    })();
    finish("MPI_Info_get_string", None, r)
}

/// `MPI_Info_get_valuelen`: the length of the value of `key` (without the NUL).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_get_valuelen(
    info: MPI_Info,
    key: *const c_char,
    valuelen: *mut c_int,
    flag: *mut c_int,
) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        // SAFETY: NUL-terminated string from the caller.
        let k = unsafe { key_of(key)? };
        if flag.is_null() || valuelen.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "flag or valuelen is NULL"));
        }
        // SAFETY: non-null pointers.
        unsafe {
            match get(i, &k) {
                Some(v) => {
                    valuelen.write(v.len() as c_int);
                    flag.write(1);
                }
                None => flag.write(0),
            }
        }
        Ok(())
    })();
    finish("MPI_Info_get_valuelen", None, r)
}

/// `MPI_Info_delete`: removes `key`. Errors: `MPI_ERR_INFO_NOKEY` if it is not set.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_delete(info: MPI_Info, key: *const c_char) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        // SAFETY: NUL-terminated string from the caller.
        let k = unsafe { key_of(key)? };
        let mut kv = i.kv.lock().unwrap_or_else(|p| p.into_inner());
        match kv.iter().position(|(a, _)| *a == k) {
            Some(p) => {
                kv.remove(p);
                Ok(())
            }
            None => Err(MpiErr::new(
                MPI_ERR_INFO_NOKEY,
                format!("key \"{k}\" is not set"),
            )),
        }
    })();
    finish("MPI_Info_delete", None, r)
}

/// `MPI_Info_get_nkeys`: the number of keys set.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_get_nkeys(info: MPI_Info, nkeys: *mut c_int) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        if nkeys.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "nkeys is NULL"));
        }
        let n = i.kv.lock().unwrap_or_else(|p| p.into_inner()).len();
        // SAFETY: non-null pointer.
        unsafe { nkeys.write(n as c_int) };
        Ok(())
    })();
    finish("MPI_Info_get_nkeys", None, r)
}

/// `MPI_Info_get_nthkey`: the `n`-th key (0-based, in order of first setting) into a
/// buffer of MPI_MAX_INFO_KEY bytes. Errors: `MPI_ERR_ARG` for `n` out of range.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_get_nthkey(info: MPI_Info, n: c_int, key: *mut c_char) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        if key.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "key is NULL"));
        }
        let kv = i.kv.lock().unwrap_or_else(|p| p.into_inner());
        let k = usize::try_from(n)
            .ok()
            .and_then(|n| kv.get(n))
            .ok_or_else(|| {
                MpiErr::new(
                    MPI_ERR_ARG,
                    format!("n = {n}: the info has {} keys", kv.len()),
                )
            })?;
        // SAFETY: MPI_MAX_INFO_KEY bytes at `key` (MPI's contract); keys are shorter.
        unsafe { copy_out(&k.0, key, MPI_MAX_INFO_KEY as usize - 1) };
        Ok(())
    })();
    finish("MPI_Info_get_nthkey", None, r)
}

/// `MPI_Info_dup`: a copy of the info object.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_dup(info: MPI_Info, newinfo: *mut MPI_Info) -> c_int {
    let r = (|| {
        let i = obj(info)?;
        if newinfo.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "newinfo is NULL"));
        }
        let kv = i.kv.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // SAFETY: non-null pointer.
        unsafe { newinfo.write(handle::new_info(kv)) };
        Ok(())
    })();
    finish("MPI_Info_dup", None, r)
}

/// `MPI_Info_free`: frees it and sets the handle to MPI_INFO_NULL.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Info_free(info: *mut MPI_Info) -> c_int {
    let r = (|| {
        if info.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "info is NULL"));
        }
        // SAFETY: non-null pointer; the handle is magic-checked.
        unsafe {
            handle::free_info(info.read())?;
            info.write(MPI_INFO_NULL as MPI_Info);
        }
        Ok(())
    })();
    finish("MPI_Info_free", None, r)
}
