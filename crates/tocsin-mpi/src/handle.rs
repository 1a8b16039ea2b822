//! Handles of the standard ABI and the objects behind them.
//!
//! Owns the encoding of every handle kind: a predefined handle is its ABI constant
//! (1–4095, decoded by value, never dereferenced); a user handle is a pointer to a heap
//! object of this module (never in 1–4095) that starts with a kind-specific magic word,
//! checked before use, so a stale or foreign handle gets `MPI_ERR_<KIND>` rather than a
//! crash in the common cases. The process state ([`state`]) holds the world and self
//! communicators. Must not implement MPI semantics beyond lookup: the API modules do.

use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::abi::*;
use crate::datatype::{self, Datatype};
use crate::error::{MpiErr, MpiResult};

/// A communicator object.
pub struct CommObj {
    magic: u64,
    /// The tocsin communicator.
    pub comm: tocsin::Comm,
    /// Its error handler (a handle value: `MPI_ERRORS_ARE_FATAL`… or a user errhandler).
    pub errh: AtomicUsize,
    /// Cached attributes (keyval → value), for MPI_Comm_set_attr/get_attr.
    pub attrs: Mutex<Vec<(c_int, *mut std::ffi::c_void)>>,
}

// SAFETY: the attribute values are opaque pointers owned by the application, only stored
// and handed back; the rest is Send + Sync.
unsafe impl Send for CommObj {}
// SAFETY: as above; `attrs` is behind a mutex.
unsafe impl Sync for CommObj {}

const COMM_MAGIC: u64 = 0x746f_6373_636f_6d6d;
const TYPE_MAGIC: u64 = 0x746f_6373_7479_7065;
const OP_MAGIC: u64 = 0x746f_6373_6f70_6f70;
const GROUP_MAGIC: u64 = 0x746f_6373_6772_7570;
const INFO_MAGIC: u64 = 0x746f_6373_696e_666f;
const ERRH_MAGIC: u64 = 0x746f_6373_6572_7268;

impl CommObj {
    /// A communicator object with the default error handler (MPI_ERRORS_ARE_FATAL).
    pub fn new(comm: tocsin::Comm) -> CommObj {
        CommObj {
            magic: COMM_MAGIC,
            comm,
            errh: AtomicUsize::new(MPI_ERRORS_ARE_FATAL),
            attrs: Mutex::new(Vec::new()),
        }
    }
}

/// What `MPI_Init` set up.
pub struct State {
    /// MPI_COMM_WORLD.
    pub world: CommObj,
    /// MPI_COMM_SELF.
    pub selfc: CommObj,
    /// The thread level granted.
    pub thread_level: c_int,
    /// The thread that called MPI_Init.
    pub main_thread: std::thread::ThreadId,
}

static STATE: OnceLock<State> = OnceLock::new();
/// 0: not initialized, 1: initialized, 2: finalized.
pub(crate) static PHASE: AtomicUsize = AtomicUsize::new(0);

/// MPI_COMM_WORLD's object while MPI is initialized (set by [`set_state`], cleared by
/// [`retire_world`]): the latency path's lookup ([`comm_fast`]) is one load.
static WORLD: AtomicPtr<CommObj> = AtomicPtr::new(std::ptr::null_mut());

/// Sets the state once (MPI_Init) and publishes MPI_COMM_WORLD to [`comm_fast`].
pub(crate) fn set_state(s: State) -> bool {
    let ok = STATE.set(s).is_ok();
    if let Some(st) = STATE.get() {
        WORLD.store(std::ptr::from_ref(&st.world).cast_mut(), Ordering::Release);
    }
    ok
}

/// MPI_Finalize: [`comm_fast`] no longer finds MPI_COMM_WORLD (calls after it take the
/// general path, which reports "called after MPI_Finalize").
pub(crate) fn retire_world() {
    WORLD.store(std::ptr::null_mut(), Ordering::Release);
}

/// The state, if MPI is initialized and not finalized.
///
/// # Errors
/// `MPI_ERR_OTHER` naming the situation (before MPI_Init or after MPI_Finalize).
pub fn state() -> MpiResult<&'static State> {
    match (PHASE.load(Ordering::Acquire), STATE.get()) {
        (1, Some(s)) => Ok(s),
        (2, _) => Err(MpiErr::new(MPI_ERR_OTHER, "called after MPI_Finalize")),
        _ => Err(MpiErr::new(
            MPI_ERR_OTHER,
            "called before MPI_Init (or MPI_Init_thread)",
        )),
    }
}

/// The state even after finalize (for the error path), if it was ever set.
pub(crate) fn state_any() -> Option<&'static State> {
    STATE.get()
}

/// The communicator object behind `h`.
///
/// # Errors
/// `MPI_ERR_COMM` for MPI_COMM_NULL, another predefined value or a pointer that is not a
/// live communicator.
///
/// # Safety
/// `h` is a predefined handle or a pointer this module returned (checked by its magic word:
/// a dangling pointer into unmapped memory would still fault).
pub unsafe fn comm<'a>(h: MPI_Comm) -> MpiResult<&'a CommObj> {
    let st = state()?;
    match h as usize {
        MPI_COMM_WORLD => Ok(&st.world),
        MPI_COMM_SELF => Ok(&st.selfc),
        MPI_COMM_NULL => Err(MpiErr::new(
            MPI_ERR_COMM,
            "MPI_COMM_NULL is not a communicator",
        )),
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_COMM,
            format!("{v:#x} is not a communicator handle"),
        )),
        _ => {
            let p = h as *const CommObj;
            // SAFETY: a user communicator handle is a pointer from `new_comm`; the magic
            // word tells a live one from anything else readable.
            if !p.is_aligned() || unsafe { (*p).magic } != COMM_MAGIC {
                return Err(MpiErr::new(MPI_ERR_COMM, "not a live communicator handle"));
            }
            // SAFETY: checked above; freed only by `free_comm`, which clears the magic.
            Ok(unsafe { &*p })
        }
    }
}

/// The communicator behind `h` when MPI is initialized and `h` is MPI_COMM_WORLD or a
/// live user communicator; `None` for anything else, which the caller's general path then
/// looks up with [`comm`] to report what is wrong. The latency path of the blocking
/// point-to-point calls: no error value is built, MPI_COMM_WORLD costs one load.
///
/// # Safety
/// As [`comm`].
#[inline(always)]
pub unsafe fn comm_fast<'a>(h: MPI_Comm) -> Option<&'a CommObj> {
    let v = h as usize;
    if v == MPI_COMM_WORLD {
        // SAFETY: non-null only between MPI_Init and MPI_Finalize, and then it points to
        // the world communicator inside `STATE`, a static never dropped.
        return unsafe { WORLD.load(Ordering::Acquire).as_ref() };
    }
    if v < 4096 || PHASE.load(Ordering::Acquire) != 1 {
        return None;
    }
    let p = h as *const CommObj;
    // SAFETY: as in `comm`: a user communicator handle is a pointer from `new_comm`, its
    // magic word tells a live one from anything else readable.
    if !p.is_aligned() || unsafe { (*p).magic } != COMM_MAGIC {
        return None;
    }
    // SAFETY: checked above; freed only by `free_comm`, which clears the magic.
    Some(unsafe { &*p })
}

/// A new user communicator handle.
pub fn new_comm(c: tocsin::Comm) -> MPI_Comm {
    Box::into_raw(Box::new(CommObj::new(c))) as MPI_Comm
}

/// Frees a user communicator handle (MPI_Comm_free).
///
/// # Errors
/// `MPI_ERR_COMM` for a predefined or invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn free_comm(h: MPI_Comm) -> MpiResult<()> {
    let v = h as usize;
    if v < 4096 {
        return Err(MpiErr::new(
            MPI_ERR_COMM,
            "predefined communicators (MPI_COMM_WORLD, MPI_COMM_SELF, MPI_COMM_NULL) cannot be freed",
        ));
    }
    // SAFETY: forwarded.
    unsafe { comm(h)? };
    // SAFETY: checked live above; the box came from `new_comm`.
    let mut b = unsafe { Box::from_raw(h as *mut CommObj) };
    b.magic = 0;
    drop(b);
    Ok(())
}

/// A user datatype.
pub struct TypeObj {
    magic: u64,
    /// The type map.
    pub dt: Arc<Datatype>,
    /// MPI_Type_commit was called.
    pub committed: std::sync::atomic::AtomicBool,
}

/// The datatype behind `h` (predefined or user) and whether it may be used for
/// communication (predefined, or committed).
///
/// # Errors
/// `MPI_ERR_TYPE` for MPI_DATATYPE_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn datatype<'a>(h: MPI_Datatype) -> MpiResult<(&'a Arc<Datatype>, bool)> {
    let v = h as usize;
    if v < 4096 {
        return datatype::predefined::predefined(v)
            .map(|d| (d, true))
            .ok_or_else(|| {
                MpiErr::new(
                    MPI_ERR_TYPE,
                    format!(
                        "{v:#x} is not a datatype (MPI_DATATYPE_NULL or not a predefined type)"
                    ),
                )
            });
    }
    let p = h as *const TypeObj;
    // SAFETY: as in `comm`.
    if !p.is_aligned() || unsafe { (*p).magic } != TYPE_MAGIC {
        return Err(MpiErr::new(MPI_ERR_TYPE, "not a live datatype handle"));
    }
    // SAFETY: checked above.
    let t = unsafe { &*p };
    Ok((&t.dt, t.committed.load(Ordering::Acquire)))
}

/// The datatype behind `h`, which must be usable for communication (committed).
///
/// # Errors
/// As [`datatype`], and `MPI_ERR_TYPE` for a type not committed.
///
/// # Safety
/// As [`comm`].
pub unsafe fn comm_datatype<'a>(h: MPI_Datatype) -> MpiResult<&'a Arc<Datatype>> {
    // SAFETY: forwarded.
    let (d, committed) = unsafe { datatype(h)? };
    if !committed {
        return Err(MpiErr::new(
            MPI_ERR_TYPE,
            "datatype not committed (call MPI_Type_commit first)",
        ));
    }
    Ok(d)
}

/// A new user datatype handle (not committed).
pub fn new_datatype(dt: Arc<Datatype>) -> MPI_Datatype {
    Box::into_raw(Box::new(TypeObj {
        magic: TYPE_MAGIC,
        dt,
        committed: std::sync::atomic::AtomicBool::new(false),
    })) as MPI_Datatype
}

/// Commits a user datatype (no-op for predefined ones).
///
/// # Errors
/// As [`datatype`].
///
/// # Safety
/// As [`comm`].
pub unsafe fn commit_datatype(h: MPI_Datatype) -> MpiResult<()> {
    // SAFETY: forwarded.
    unsafe { datatype(h)? };
    if (h as usize) >= 4096 {
        // SAFETY: checked live by `datatype`.
        unsafe {
            (*(h as *const TypeObj))
                .committed
                .store(true, Ordering::Release)
        };
    }
    Ok(())
}

/// Frees a user datatype handle.
///
/// # Errors
/// `MPI_ERR_TYPE` for a predefined or invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn free_datatype(h: MPI_Datatype) -> MpiResult<()> {
    if (h as usize) < 4096 {
        return Err(MpiErr::new(
            MPI_ERR_TYPE,
            "predefined datatypes cannot be freed",
        ));
    }
    // SAFETY: forwarded.
    unsafe { datatype(h)? };
    // SAFETY: checked live; the box came from `new_datatype`.
    let mut b = unsafe { Box::from_raw(h as *mut TypeObj) };
    b.magic = 0;
    Ok(())
}

/// A user operation (MPI_Op_create).
pub struct OpObj {
    magic: u64,
    /// The operation.
    pub op: tocsin::Op,
    /// The C function, for MPI_Op_free bookkeeping.
    pub user: MPI_User_function,
}

/// The operation behind `h`.
///
/// # Errors
/// `MPI_ERR_OP` for MPI_OP_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn op(h: MPI_Op) -> MpiResult<tocsin::Op> {
    use tocsin::Op;
    Ok(match h as usize {
        MPI_SUM => Op::Sum,
        MPI_PROD => Op::Prod,
        MPI_MIN => Op::Min,
        MPI_MAX => Op::Max,
        MPI_LAND => Op::Land,
        MPI_LOR => Op::Lor,
        MPI_LXOR => Op::Lxor,
        MPI_BAND => Op::Band,
        MPI_BOR => Op::Bor,
        MPI_BXOR => Op::Bxor,
        MPI_MINLOC => Op::MinLoc,
        MPI_MAXLOC => Op::MaxLoc,
        MPI_REPLACE => Op::Replace,
        MPI_NO_OP => Op::NoOp,
        v if v < 4096 => {
            return Err(MpiErr::new(
                MPI_ERR_OP,
                format!("{v:#x} is not an operation (MPI_OP_NULL or not a predefined op)"),
            ))
        }
        _ => {
            let p = h as *const OpObj;
            // SAFETY: as in `comm`.
            if !p.is_aligned() || unsafe { (*p).magic } != OP_MAGIC {
                return Err(MpiErr::new(MPI_ERR_OP, "not a live operation handle"));
            }
            // SAFETY: checked above.
            unsafe { (*p).op.clone() }
        }
    })
}

/// A new user operation handle.
pub fn new_op(op: tocsin::Op, user: MPI_User_function) -> MPI_Op {
    Box::into_raw(Box::new(OpObj {
        magic: OP_MAGIC,
        op,
        user,
    })) as MPI_Op
}

/// Frees a user operation handle.
///
/// # Errors
/// `MPI_ERR_OP` for a predefined or invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn free_op(h: MPI_Op) -> MpiResult<()> {
    if (h as usize) < 4096 {
        return Err(MpiErr::new(
            MPI_ERR_OP,
            "predefined operations cannot be freed",
        ));
    }
    // SAFETY: forwarded.
    unsafe { op(h)? };
    // SAFETY: checked live; the box came from `new_op`.
    let mut b = unsafe { Box::from_raw(h as *mut OpObj) };
    b.magic = 0;
    Ok(())
}

/// A group object.
pub struct GroupObj {
    magic: u64,
    /// The group.
    pub group: tocsin::Group,
}

/// The group behind `h` (MPI_GROUP_EMPTY included).
///
/// # Errors
/// `MPI_ERR_GROUP` for MPI_GROUP_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn group(h: MPI_Group) -> MpiResult<tocsin::Group> {
    match h as usize {
        MPI_GROUP_EMPTY => Ok(tocsin::Group::empty()),
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_GROUP,
            format!("{v:#x} is not a group (MPI_GROUP_NULL?)"),
        )),
        _ => {
            let p = h as *const GroupObj;
            // SAFETY: as in `comm`.
            if !p.is_aligned() || unsafe { (*p).magic } != GROUP_MAGIC {
                return Err(MpiErr::new(MPI_ERR_GROUP, "not a live group handle"));
            }
            // SAFETY: checked above.
            Ok(unsafe { (*p).group.clone() })
        }
    }
}

/// A new group handle (MPI_GROUP_EMPTY for an empty group).
pub fn new_group(g: tocsin::Group) -> MPI_Group {
    if g.size() == 0 {
        return MPI_GROUP_EMPTY as MPI_Group;
    }
    Box::into_raw(Box::new(GroupObj {
        magic: GROUP_MAGIC,
        group: g,
    })) as MPI_Group
}

/// Frees a group handle (MPI_GROUP_EMPTY: nothing to free).
///
/// # Errors
/// `MPI_ERR_GROUP` for MPI_GROUP_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn free_group(h: MPI_Group) -> MpiResult<()> {
    // SAFETY: forwarded.
    unsafe { group(h)? };
    if (h as usize) >= 4096 {
        // SAFETY: checked live; the box came from `new_group`.
        let mut b = unsafe { Box::from_raw(h as *mut GroupObj) };
        b.magic = 0;
    }
    Ok(())
}

/// An info object: ordered (key, value) pairs.
pub struct InfoObj {
    magic: u64,
    /// The pairs.
    pub kv: Mutex<Vec<(String, String)>>,
}

/// The info object behind `h` (`None` for MPI_INFO_NULL).
///
/// # Errors
/// `MPI_ERR_INFO` for an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn info<'a>(h: MPI_Info) -> MpiResult<Option<&'a InfoObj>> {
    match h as usize {
        MPI_INFO_NULL => Ok(None),
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_INFO,
            format!("{v:#x} is not an info handle"),
        )),
        _ => {
            let p = h as *const InfoObj;
            // SAFETY: as in `comm`.
            if !p.is_aligned() || unsafe { (*p).magic } != INFO_MAGIC {
                return Err(MpiErr::new(MPI_ERR_INFO, "not a live info handle"));
            }
            // SAFETY: checked above.
            Ok(Some(unsafe { &*p }))
        }
    }
}

/// A new info handle.
pub fn new_info(kv: Vec<(String, String)>) -> MPI_Info {
    Box::into_raw(Box::new(InfoObj {
        magic: INFO_MAGIC,
        kv: Mutex::new(kv),
    })) as MPI_Info
}

/// Frees an info handle.
///
/// # Errors
/// `MPI_ERR_INFO` for MPI_INFO_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn free_info(h: MPI_Info) -> MpiResult<()> {
    // SAFETY: forwarded.
    if unsafe { info(h)? }.is_none() {
        return Err(MpiErr::new(MPI_ERR_INFO, "MPI_INFO_NULL cannot be freed"));
    }
    // SAFETY: checked live; the box came from `new_info`.
    let mut b = unsafe { Box::from_raw(h as *mut InfoObj) };
    b.magic = 0;
    Ok(())
}

/// A user error handler (MPI_Comm_create_errhandler).
pub struct ErrhObj {
    magic: u64,
    /// The function.
    pub f: MPI_Comm_errhandler_function,
}

/// What an error handler handle means.
pub enum Errh {
    /// MPI_ERRORS_ARE_FATAL or MPI_ERRORS_ABORT: end the job.
    Fatal,
    /// MPI_ERRORS_RETURN.
    Return,
    /// A user function.
    User(MPI_Comm_errhandler_function),
}

/// Decodes an error handler handle value.
///
/// # Errors
/// `MPI_ERR_ERRHANDLER` for MPI_ERRHANDLER_NULL or an invalid handle.
///
/// # Safety
/// As [`comm`].
pub unsafe fn errhandler(v: usize) -> MpiResult<Errh> {
    match v {
        MPI_ERRORS_ARE_FATAL | MPI_ERRORS_ABORT => Ok(Errh::Fatal),
        MPI_ERRORS_RETURN => Ok(Errh::Return),
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_ERRHANDLER,
            format!("{v:#x} is not an error handler"),
        )),
        _ => {
            let p = v as *const ErrhObj;
            // SAFETY: as in `comm`.
            if !p.is_aligned() || unsafe { (*p).magic } != ERRH_MAGIC {
                return Err(MpiErr::new(
                    MPI_ERR_ERRHANDLER,
                    "not a live error handler handle",
                ));
            }
            // SAFETY: checked above.
            Ok(Errh::User(unsafe { (*p).f }))
        }
    }
}

/// A new user error handler handle (never freed: communicators may still name it).
pub fn new_errhandler(f: MPI_Comm_errhandler_function) -> MPI_Errhandler {
    Box::into_raw(Box::new(ErrhObj {
        magic: ERRH_MAGIC,
        f,
    })) as MPI_Errhandler
}
