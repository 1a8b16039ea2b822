//! Collective operations: which algorithm each collective uses, by message size and
//! communicator size, as rounds of point-to-point steps ([`sched::Schedule`]), and the
//! reduction operations ([`Op`]).
//!
//! Owns the algorithms (one file each, named as in the literature) and the operations,
//! sans I/O. It must not touch requests, buffers or the engine: the progress engine runs
//! schedules (`progress::coll`), in the application's calls, in `thread` mode's progress
//! thread, or in the interrupt handler, so a nonblocking collective advances while the
//! application computes. The public entry points are methods of [`crate::Comm`] and
//! [`crate::Scope`].
//!
//! | collective | algorithms (chosen by) |
//! |---|---|
//! | barrier | dissemination |
//! | bcast | binomial; scatter + ring allgather (≥ 12 KiB and ≥ 8 ranks) |
//! | reduce | binomial (non-commutative: to rank 0 in order, then to the root) |
//! | allreduce | recursive doubling; ring reduce-scatter + allgather (≥ 64 KiB); reduce + bcast (non-commutative) |
//! | gather(v), scatter(v) | linear |
//! | allgather(v) | linear (≤ 32 KiB in all); ring |
//! | alltoall(v) | linear (blocks ≤ 256 B); pairwise exchange |
//! | reduce_scatter(_block) | ring (commutative); reduce + scatter |
//! | scan, exscan | recursive doubling |
//!
//! Tags: every collective on a communicator takes the next number of its sequence as its
//! tag on the communicator's collective context, so several nonblocking collectives may be
//! in flight at once (MPI requires every rank to start them in the same order).

pub(crate) mod allgather;
pub(crate) mod allreduce;
pub(crate) mod alltoall;
pub(crate) mod barrier;
pub(crate) mod bcast;
pub(crate) mod gather;
pub mod op;
pub(crate) mod reduce;
pub(crate) mod reduce_scatter;
pub(crate) mod scan;
pub(crate) mod sched;

pub use op::{Elem, Op, Reducible};

#[cfg(test)]
mod tests;
