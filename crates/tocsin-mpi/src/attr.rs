//! Communicator attributes (MPI-4.1 §7.7): the predefined attributes of MPI_COMM_WORLD
//! (`MPI_TAG_UB`, `MPI_HOST`, `MPI_IO`, `MPI_WTIME_IS_GLOBAL`, `MPI_UNIVERSE_SIZE`,
//! `MPI_LASTUSEDCODE`, `MPI_APPNUM`) and user keyvals: `MPI_Comm_create_keyval`,
//! `MPI_Comm_free_keyval`, `MPI_Comm_set_attr`, `MPI_Comm_get_attr`,
//! `MPI_Comm_delete_attr`, with copy callbacks run by `MPI_Comm_dup` and delete callbacks
//! run by `MPI_Comm_free` (see [`copy_attrs`], [`delete_attrs`]).
//!
//! Owns the keyval registry. The predefined attributes are answered on every communicator
//! (the standard attaches them to MPI_COMM_WORLD; answering elsewhere is harmless).

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::AtomicI32;
use std::sync::Mutex;

use crate::abi::*;
use crate::error::{raise, with_comm, MpiErr, MpiResult};
use crate::handle::CommObj;

/// A user keyval.
#[derive(Clone, Copy)]
struct Keyval {
    copy: MPI_Comm_copy_attr_function,
    delete: MPI_Comm_delete_attr_function,
    extra: usize,
}

struct Registry {
    next: c_int,
    map: HashMap<c_int, Keyval>,
}

static KEYVALS: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut g = KEYVALS.lock().unwrap_or_else(|p| p.into_inner());
    let r = g.get_or_insert_with(|| Registry {
        next: 1000,
        map: HashMap::new(),
    });
    f(r)
}

fn keyval(k: c_int) -> MpiResult<Keyval> {
    with_registry(|r| r.map.get(&k).copied()).ok_or_else(|| {
        MpiErr::new(
            MPI_ERR_KEYVAL,
            format!("{k} is not a communicator keyval (from MPI_Comm_create_keyval)"),
        )
    })
}

static TAG_UB: c_int = i32::MAX;
static HOST: c_int = MPI_PROC_NULL;
static IO: c_int = MPI_ANY_SOURCE;
static WTIME_IS_GLOBAL: c_int = 0;
static LASTUSEDCODE: c_int = MPI_ERR_LASTCODE;
static UNIVERSE_SIZE: AtomicI32 = AtomicI32::new(0);

/// The value of a predefined attribute: `Some(Some(ptr))` set, `Some(None)` predefined but
/// not set, `None` not predefined.
fn predefined(c: &CommObj, k: c_int) -> Option<Option<*const c_int>> {
    Some(match k {
        MPI_TAG_UB => Some(&TAG_UB as *const c_int),
        MPI_HOST => Some(&HOST as *const c_int),
        MPI_IO => Some(&IO as *const c_int),
        MPI_WTIME_IS_GLOBAL => Some(&WTIME_IS_GLOBAL as *const c_int),
        MPI_LASTUSEDCODE => Some(&LASTUSEDCODE as *const c_int),
        MPI_UNIVERSE_SIZE => {
            let n = crate::handle::state().map_or(c.comm.size(), |s| s.world.comm.size());
            UNIVERSE_SIZE.store(n as i32, std::sync::atomic::Ordering::Relaxed);
            Some(UNIVERSE_SIZE.as_ptr() as *const c_int)
        }
        MPI_APPNUM => None,
        _ => return None,
    })
}

fn attrs(c: &CommObj) -> std::sync::MutexGuard<'_, Vec<(c_int, *mut c_void)>> {
    c.attrs.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the delete callback of attribute (`k`, `v`) of communicator `h`.
fn run_delete(h: MPI_Comm, k: c_int, v: *mut c_void) -> MpiResult<()> {
    let kv = keyval(k)?;
    if let Some(f) = kv.delete {
        // SAFETY: the application's callback with the arguments MPI specifies.
        let rc = unsafe { f(h, k, v, kv.extra as *mut c_void) };
        if rc != MPI_SUCCESS {
            return Err(MpiErr::new(
                rc,
                format!("the delete callback of keyval {k} returned {rc}"),
            ));
        }
    }
    Ok(())
}

/// Runs the delete callbacks of every attribute of `c` (MPI_Comm_free), in reverse order
/// of setting.
pub(crate) fn delete_attrs(c: &CommObj, h: MPI_Comm) -> MpiResult<()> {
    let list = std::mem::take(&mut *attrs(c));
    let mut res = Ok(());
    for (k, v) in list.into_iter().rev() {
        let r = run_delete(h, k, v);
        if res.is_ok() {
            res = r;
        }
    }
    res
}

/// Copies the attributes of `old` to `new` through their copy callbacks (MPI_Comm_dup):
/// `MPI_COMM_NULL_COPY_FN` (NULL) copies nothing, `MPI_COMM_DUP_FN` (1) copies the value.
pub(crate) fn copy_attrs(old: &CommObj, oldh: MPI_Comm, new: &CommObj) -> MpiResult<()> {
    let list = attrs(old).clone();
    let mut out = Vec::new();
    for (k, v) in list {
        let kv = keyval(k)?;
        match kv.copy.map(|f| f as usize) {
            None => {}
            Some(1) => out.push((k, v)),
            Some(_) => {
                let Some(f) = kv.copy else { continue };
                let mut nv: *mut c_void = std::ptr::null_mut();
                let mut flag: c_int = 0;
                // SAFETY: the application's callback with the arguments MPI specifies;
                // `attribute_val_out` is the address of a `void *`.
                let rc = unsafe {
                    f(
                        oldh,
                        k,
                        kv.extra as *mut c_void,
                        v,
                        &mut nv as *mut *mut c_void as *mut c_void,
                        &mut flag,
                    )
                };
                if rc != MPI_SUCCESS {
                    return Err(MpiErr::new(
                        rc,
                        format!("the copy callback of keyval {k} returned {rc}"),
                    ));
                }
                if flag != 0 {
                    out.push((k, nv));
                }
            }
        }
    }
    *attrs(new) = out;
    Ok(())
}

/// `MPI_Comm_create_keyval`: a new keyval with its copy and delete callbacks
/// (`MPI_COMM_NULL_COPY_FN`, `MPI_COMM_DUP_FN`, `MPI_COMM_NULL_DELETE_FN` accepted).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_create_keyval(
    comm_copy_attr_fn: MPI_Comm_copy_attr_function,
    comm_delete_attr_fn: MPI_Comm_delete_attr_function,
    comm_keyval: *mut c_int,
    extra_state: *mut c_void,
) -> c_int {
    if comm_keyval.is_null() {
        return raise(
            "MPI_Comm_create_keyval",
            None,
            MpiErr::new(MPI_ERR_ARG, "comm_keyval is NULL"),
        );
    }
    let k = with_registry(|r| {
        let k = r.next;
        r.next += 1;
        r.map.insert(
            k,
            Keyval {
                copy: comm_copy_attr_fn,
                delete: comm_delete_attr_fn,
                extra: extra_state as usize,
            },
        );
        k
    });
    // SAFETY: non-null `int *`.
    unsafe { comm_keyval.write(k) };
    MPI_SUCCESS
}

/// `MPI_Comm_free_keyval`: frees the keyval (attributes set with it stay until deleted)
/// and sets it to MPI_KEYVAL_INVALID. Errors: `MPI_ERR_KEYVAL`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_free_keyval(comm_keyval: *mut c_int) -> c_int {
    let r = (|| {
        if comm_keyval.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "comm_keyval is NULL"));
        }
        // SAFETY: non-null `int *`.
        let k = unsafe { comm_keyval.read() };
        keyval(k)?;
        // SAFETY: as above.
        unsafe { comm_keyval.write(MPI_KEYVAL_INVALID) };
        Ok(())
    })();
    crate::error::finish("MPI_Comm_free_keyval", None, r)
}

/// `MPI_Comm_set_attr`: sets attribute `comm_keyval` (an existing value is deleted first,
/// through the delete callback). Errors: `MPI_ERR_COMM`, `MPI_ERR_KEYVAL` (unknown or
/// predefined keyval).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_set_attr(
    comm: MPI_Comm,
    comm_keyval: c_int,
    attribute_val: *mut c_void,
) -> c_int {
    // SAFETY: the caller's handle.
    unsafe {
        with_comm("MPI_Comm_set_attr", comm, |c| {
            keyval(comm_keyval)?;
            let old = {
                let mut a = attrs(c);
                let old = a
                    .iter()
                    .position(|(k, _)| *k == comm_keyval)
                    .map(|i| a.remove(i).1);
                a.push((comm_keyval, attribute_val));
                old
            };
            if let Some(v) = old {
                run_delete(comm, comm_keyval, v)?;
            }
            Ok(())
        })
    }
}

/// `MPI_Comm_get_attr`: the attribute's value (a `void *` written at `attribute_val`) and
/// whether it is set. Predefined: `MPI_TAG_UB` (INT_MAX), `MPI_HOST` (MPI_PROC_NULL),
/// `MPI_IO` (MPI_ANY_SOURCE: every rank can do I/O), `MPI_WTIME_IS_GLOBAL` (0),
/// `MPI_UNIVERSE_SIZE` (the world size), `MPI_LASTUSEDCODE`; `MPI_APPNUM` is not set.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_KEYVAL`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_get_attr(
    comm: MPI_Comm,
    comm_keyval: c_int,
    attribute_val: *mut c_void,
    flag: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; pointers checked.
    unsafe {
        with_comm("MPI_Comm_get_attr", comm, |c| {
            if attribute_val.is_null() || flag.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "attribute_val or flag is NULL"));
            }
            let out = attribute_val as *mut *mut c_void;
            let v = match predefined(c, comm_keyval) {
                Some(p) => p.map(|p| p as *mut c_void),
                None => {
                    keyval(comm_keyval)?;
                    attrs(c)
                        .iter()
                        .find(|(k, _)| *k == comm_keyval)
                        .map(|(_, v)| *v)
                }
            };
            match v {
                Some(v) => {
                    out.write_unaligned(v);
                    flag.write(1);
                }
                None => flag.write(0),
            }
            Ok(())
        })
    }
}

/// `MPI_Comm_delete_attr`: deletes the attribute (delete callback run). Errors:
/// `MPI_ERR_COMM`, `MPI_ERR_KEYVAL` (unknown keyval or attribute not set).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_delete_attr(comm: MPI_Comm, comm_keyval: c_int) -> c_int {
    // SAFETY: the caller's handle.
    unsafe {
        with_comm("MPI_Comm_delete_attr", comm, |c| {
            keyval(comm_keyval)?;
            let old = {
                let mut a = attrs(c);
                a.iter()
                    .position(|(k, _)| *k == comm_keyval)
                    .map(|i| a.remove(i).1)
            };
            match old {
                Some(v) => run_delete(comm, comm_keyval, v),
                None => Err(MpiErr::new(
                    MPI_ERR_KEYVAL,
                    format!("attribute {comm_keyval} is not set on this communicator"),
                )),
            }
        })
    }
}
