//! # tocsin — message passing whose communications progress when the other side rings
//!
//! MPI-style point-to-point messaging between the ranks of a job: ranks, tags, wildcards,
//! non-overtaking order, eager and rendezvous (RTS/CTS/FIN) protocols, unexpected messages.
//! Ranks on one node talk through a shared-memory segment of per-pair lock-free rings
//! (large messages move with a single copy through Linux CMA); ranks on different nodes
//! through TCP, whose kernel raises the interrupt when data arrives ([`Comm::transport`]).
//!
//! ```no_run
//! let comm = tocsin::init()?;
//! if comm.rank() == 0 {
//!     comm.send(b"hello", 1, 7)?;
//! } else if comm.rank() == 1 {
//!     let mut buf = [0u8; 16];
//!     let st = comm.recv(&mut buf, 0, 7)?;
//!     assert_eq!(&buf[..st.len], b"hello");
//! }
//! # Ok::<(), tocsin::Error>(())
//! ```
//!
//! Non-blocking operations live in a [`Scope`] (as `std::thread::scope`): a request borrows
//! its buffer until the scope ends, so the compiler forbids touching a buffer in flight and
//! the scope waits for every request still pending when it closes.
//!
//! The lock-free ring and the protocol core are internal: no safe code outside the crate can
//! build a second producer of a ring or hand the core a raw buffer pointer.
//!
//! ```compile_fail
//! // The ring is not public: two producers of one ring cannot be built from safe code.
//! let _ = tocsin::ring::max_body(4096);
//! ```
//!
//! Communicators ([`Comm::dup`], [`Comm::split`], [`Group`]) each own their contexts of the
//! match key; collectives ([`Comm::allreduce`]… and the nonblocking [`Scope::iallreduce`]…)
//! are schedules of rounds that the progress engine runs, in interrupt handlers too.
//!
//! ## Layout (one concept per module)
//! - [`wire`]: header encoding on the wire (sans-I/O).
//! - [`matching`]: posted-receive and unexpected queues (sans-I/O).
//! - `protocol`: eager / rendezvous request state machines (sans-I/O, driven by tests).
//! - `ring`: the lock-free single-producer/single-consumer byte ring.
//! - `transport`: which transport serves each peer (`self`, `shm`, `tcp`), each with its
//!   sending and receiving halves, and how peers are woken and interrupted
//!   (`transport::shm`: the node's segment, rings, CMA, doorbells).
//! - `progress`: the progress engine and the wait policies of each [`ProgressMode`]; it
//!   runs collective schedules (`progress::coll`).
//! - [`coll`]: collective algorithms as schedules (sans I/O) and reduction operations.
//! - `comm`: the public API (communicators, groups, context ids, requests, collectives'
//!   arguments, raw requests for the C layer).
//! - [`interrupt`]: signals and user interrupts: who to interrupt, how, and the handlers.
//! - [`pmi`]: the PMI-1 client used to bootstrap.
//! - [`tune`]: the calibration of this machine, the cost model that chooses the eager
//!   threshold, CMA, pipeline chunk and spin from it, and the per-user cache.
//! - `sys`: the few system calls wrapped in `unsafe` (futex, CMA, memfd, pidfd).
//! - `diag`: warnings that reach stderr once per kind, and `fatal` for handlers.

#![warn(missing_docs)]

pub mod coll;
pub mod config;
pub mod error;
pub mod interrupt;
pub mod matching;
pub mod pmi;
pub mod stats;
pub mod tune;
pub mod wire;

mod comm;
pub(crate) mod diag;
mod progress;
pub(crate) mod protocol;
pub(crate) mod ring;
mod sys;
mod transport;

pub use coll::{Elem, Op, Reducible};
pub use comm::{
    test_any, wait_all, wait_any, wait_some, Collective, Comm, Compare, Group, Message, Persistent,
    RawRequest, RecvRequest, Request, Scope, Status, SCOPE_UNWIND_GRACE,
};
pub use config::{Config, ProgressMode};
pub use error::{Error, Result};
pub use progress::LIVENESS_PERIOD;
pub use stats::{stats, Stats};

/// A rank: the index of a process in a communicator, `0..size`.
pub type Rank = u32;
/// A message tag: `0..=i32::MAX`; [`ANY_TAG`] on receives matches any.
pub type Tag = i32;

/// Receive or probe from any rank.
pub const ANY_SOURCE: Rank = u32::MAX;
/// Receive or probe with any tag.
pub const ANY_TAG: Tag = -1;

/// Initializes tocsin from the environment ([`Config::from_env`]) and returns the world
/// communicator. Started by `tocsin run`, `mpiexec.hydra` or any PMI-1 launcher, it joins the
/// job; started alone, it is rank 0 of a world of size 1.
///
/// # Errors
/// See [`Config::from_env`] and [`Config::init`].
pub fn init() -> Result<Comm> {
    Config::from_env()?.init()
}
