//! Collective operations and communicator creation on a [`Comm`], blocking and (in a
//! [`Scope`]) nonblocking, and the [`Collective`] description the C layer starts with raw
//! buffers.
//!
//! Owns argument checking of collectives and the agreement on context ids. Which algorithm
//! runs is `crate::coll`'s choice; running it is the engine's (`progress::coll`).

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use bytemuck::Pod;

use super::context::{lowest, WORDS};
use super::{bytes_of, bytes_of_mut, Comm, CommInfo, Compare, Group, Request, Scope};
use crate::coll::sched::{Buf, Schedule};
use crate::coll::{self, Elem, Op, Reducible};
use crate::error::{Error, Result};
use crate::progress::coll::Running;
use crate::progress::ReqHandle;
use crate::Rank;

/// A collective operation, described in bytes, for [`Comm::start_collective`]. Blocks are
/// `(offset, len)` in bytes, one per rank in rank order. `in_place` is MPI_IN_PLACE: the
/// input is read from the receive buffer (for rooted operations, only the root may set it).
#[derive(Debug, Clone)]
pub enum Collective {
    /// MPI_Barrier.
    Barrier,
    /// MPI_Bcast of `len` bytes of the receive buffer from `root`.
    Bcast {
        /// Root rank.
        root: Rank,
        /// Bytes.
        len: usize,
    },
    /// MPI_Reduce of `count` elements to `root`.
    Reduce {
        /// Root rank.
        root: Rank,
        /// Elements.
        count: usize,
        /// Element type.
        elem: Elem,
        /// Operation.
        op: Op,
        /// MPI_IN_PLACE (root only).
        in_place: bool,
    },
    /// MPI_Allreduce of `count` elements.
    Allreduce {
        /// Elements.
        count: usize,
        /// Element type.
        elem: Elem,
        /// Operation.
        op: Op,
        /// MPI_IN_PLACE.
        in_place: bool,
    },
    /// MPI_Gather(v): `len` bytes from each rank into the root's `blocks`.
    Gather {
        /// Root rank.
        root: Rank,
        /// Bytes this rank sends.
        len: usize,
        /// Where each rank's bytes land in the root's receive buffer (root only).
        blocks: Vec<(usize, usize)>,
        /// MPI_IN_PLACE (root only).
        in_place: bool,
    },
    /// MPI_Scatter(v): the root's `blocks` of its send buffer to each rank (`len` bytes).
    Scatter {
        /// Root rank.
        root: Rank,
        /// Blocks of the root's send buffer (root only).
        blocks: Vec<(usize, usize)>,
        /// Bytes this rank receives.
        len: usize,
        /// MPI_IN_PLACE (root only).
        in_place: bool,
    },
    /// MPI_Allgather(v) into `blocks` of every receive buffer.
    Allgather {
        /// Each rank's block.
        blocks: Vec<(usize, usize)>,
        /// MPI_IN_PLACE.
        in_place: bool,
    },
    /// MPI_Alltoall(v).
    Alltoall {
        /// Blocks of the send buffer, by destination.
        sblocks: Vec<(usize, usize)>,
        /// Blocks of the receive buffer, by source.
        rblocks: Vec<(usize, usize)>,
        /// MPI_IN_PLACE.
        in_place: bool,
    },
    /// MPI_Reduce_scatter(_block): `counts[r]` elements of the result to rank r.
    ReduceScatter {
        /// Elements per rank.
        counts: Vec<usize>,
        /// Element type.
        elem: Elem,
        /// Operation.
        op: Op,
        /// MPI_IN_PLACE.
        in_place: bool,
    },
    /// MPI_Scan (`exclusive`: MPI_Exscan) of `count` elements.
    Scan {
        /// Elements.
        count: usize,
        /// Element type.
        elem: Elem,
        /// Operation.
        op: Op,
        /// MPI_IN_PLACE.
        in_place: bool,
        /// MPI_Exscan.
        exclusive: bool,
    },
}

/// Largest blocking allreduce (bytes) run directly in the calling thread
/// ([`Comm::run_collective`]).
const DIRECT_ALLREDUCE: usize = 2048;

fn bad(what: &'static str, detail: String) -> Error {
    Error::InvalidArgument { what, detail }
}

fn check_op(op: &Op, e: Elem) -> Result<()> {
    op.check(e).map_err(|d| bad("operation", d))
}

/// `(offset, len)` blocks of `len` bytes each, one after the other.
fn uniform(n: u32, len: usize) -> Vec<(usize, usize)> {
    (0..n as usize).map(|i| (i * len, len)).collect()
}

/// Blocks from element counts and displacements.
fn blocks_of(counts: &[usize], displs: &[usize], esz: usize) -> Vec<(usize, usize)> {
    counts
        .iter()
        .zip(displs)
        .map(|(&c, &d)| (d * esz, c * esz))
        .collect()
}

impl Comm {
    fn check_root(&self, root: Rank) -> Result<()> {
        if root >= self.size() {
            return Err(Error::InvalidRank {
                rank: root,
                size: self.size(),
            });
        }
        Ok(())
    }

    /// The schedule of `c` on this rank, after checking its arguments.
    fn schedule(&self, c: &Collective) -> Result<(Schedule, Option<(Op, Elem)>)> {
        let (me, n) = (self.rank(), self.size());
        let check_blocks = |b: &[(usize, usize)]| {
            if b.len() != n as usize {
                Err(bad(
                    "blocks",
                    format!(
                        "{} blocks for a communicator of {n} ranks (one per rank)",
                        b.len()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        Ok(match c {
            Collective::Barrier => (coll::barrier::dissemination(me, n), None),
            Collective::Bcast { root, len } => {
                self.check_root(*root)?;
                (coll::bcast::bcast(me, n, *root, *len), None)
            }
            Collective::Reduce {
                root,
                count,
                elem,
                op,
                in_place,
            } => {
                self.check_root(*root)?;
                check_op(op, *elem)?;
                let s = coll::reduce::binomial(
                    me,
                    n,
                    *root,
                    *count,
                    elem.size(),
                    op.commutative(),
                    *in_place && me == *root,
                    Buf::Recv.at(0),
                );
                (s, Some((op.clone(), *elem)))
            }
            Collective::Allreduce {
                count,
                elem,
                op,
                in_place,
            } => {
                check_op(op, *elem)?;
                // A user operation may work on elements larger than `elem` (a C derived
                // type): only whole vectors go to it (no ring, whose blocks could split one).
                let s = if op.is_user() && op.commutative() {
                    coll::allreduce::recursive_doubling(me, n, *count, elem.size(), *in_place)
                } else {
                    coll::allreduce::allreduce(
                        me,
                        n,
                        *count,
                        elem.size(),
                        op.commutative(),
                        *in_place,
                    )
                };
                (s, Some((op.clone(), *elem)))
            }
            Collective::Gather {
                root,
                len,
                blocks,
                in_place,
            } => {
                self.check_root(*root)?;
                let b = if me == *root {
                    check_blocks(blocks)?;
                    blocks.clone()
                } else {
                    uniform(n, 0)
                };
                (
                    coll::gather::linear_gather(me, n, *root, *len, &b, *in_place && me == *root),
                    None,
                )
            }
            Collective::Scatter {
                root,
                blocks,
                len,
                in_place,
            } => {
                self.check_root(*root)?;
                let b = if me == *root {
                    check_blocks(blocks)?;
                    blocks.clone()
                } else {
                    uniform(n, 0)
                };
                (
                    coll::gather::linear_scatter(
                        me,
                        n,
                        *root,
                        Buf::Send,
                        &b,
                        *len,
                        *in_place && me == *root,
                    ),
                    None,
                )
            }
            Collective::Allgather { blocks, in_place } => {
                check_blocks(blocks)?;
                (coll::allgather::allgather(me, n, blocks, *in_place), None)
            }
            Collective::Alltoall {
                sblocks,
                rblocks,
                in_place,
            } => {
                check_blocks(rblocks)?;
                if !in_place {
                    check_blocks(sblocks)?;
                }
                (
                    coll::alltoall::alltoall(me, n, sblocks, rblocks, *in_place),
                    None,
                )
            }
            Collective::ReduceScatter {
                counts,
                elem,
                op,
                in_place,
            } => {
                check_op(op, *elem)?;
                if counts.len() != n as usize {
                    return Err(bad(
                        "counts",
                        format!("{} counts for {n} ranks (one per rank)", counts.len()),
                    ));
                }
                let s = coll::reduce_scatter::reduce_scatter(
                    me,
                    n,
                    counts,
                    elem.size(),
                    op.commutative(),
                    *in_place,
                );
                (s, Some((op.clone(), *elem)))
            }
            Collective::Scan {
                count,
                elem,
                op,
                in_place,
                exclusive,
            } => {
                check_op(op, *elem)?;
                let s = coll::scan::recursive_doubling(
                    me,
                    n,
                    *count,
                    elem.size(),
                    *in_place,
                    *exclusive,
                );
                (s, Some((op.clone(), *elem)))
            }
        })
    }

    /// Starts collective `c` on raw buffers and returns its request handle (for the C
    /// layer; the typed methods below are the safe way).
    ///
    /// # Safety
    /// `send` must be readable and `recv` readable and writable over every byte `c`
    /// addresses (per its blocks, counts and element sizes; a pointer that `c` does not
    /// use may dangle), `recv` must not be aliased by anything else while in flight, and
    /// both must stay valid until the request completes. Every rank of the communicator
    /// must start the same collectives in the same order.
    ///
    /// # Errors
    /// [`Error::InvalidRank`] (root), [`Error::InvalidArgument`] (blocks or counts not one
    /// per rank, an operation not defined on the element type).
    pub unsafe fn start_collective(
        &self,
        c: &Collective,
        send: *const u8,
        recv: *mut u8,
    ) -> Result<crate::RawRequest> {
        self.eng.background_progress();
        let h = self.start_handle(c, send, recv)?;
        Ok(crate::RawRequest::new(self, h))
    }

    fn start_handle(&self, c: &Collective, send: *const u8, recv: *mut u8) -> Result<ReqHandle> {
        let (sched, op) = self.schedule(c)?;
        // SAFETY: forwarded from the callers' contracts (the typed methods pass slices
        // covering what they describe, borrowed until the request completes).
        let r = unsafe {
            Running::new(
                sched,
                send,
                recv,
                op,
                self.info.ctx + 1,
                self.info.next_tag(),
                self.info.group.shared_ranks(),
                self.eng.rank(),
            )
        };
        Ok(self.eng.start_coll(r))
    }

    /// Runs `c` to completion (blocking collectives).
    fn run(&self, c: Collective, send: *const u8, recv: *mut u8) -> Result<()> {
        // SAFETY: the typed callers pass slices covering what `c` describes, borrowed
        // for the whole call.
        unsafe { self.run_collective(&c, send, recv) }
    }

    /// Runs collective `c` on raw buffers to completion (a blocking collective, for the C
    /// layer). A short allreduce with a predefined commutative operation on a power-of-two
    /// number of ranks runs directly in the calling thread (recursive doubling over
    /// blocking point-to-point, no schedule to build: MPICH's blocking algorithms do the
    /// same); everything else starts its schedule and waits for it. Blocking and
    /// nonblocking collectives never match each other (MPI), so the two paths may differ.
    ///
    /// # Safety
    /// As [`Comm::start_collective`], for the duration of the call.
    ///
    /// # Errors
    /// As [`Comm::start_collective`], and the collective's own ([`Error::PeerDied`]…).
    pub unsafe fn run_collective(
        &self,
        c: &Collective,
        send: *const u8,
        recv: *mut u8,
    ) -> Result<()> {
        if let Collective::Barrier = c {
            return self.barrier_direct();
        }
        if let Collective::Allreduce {
            count,
            elem,
            op,
            in_place,
        } = c
        {
            let bytes = count * elem.size();
            let n = self.size();
            if bytes <= DIRECT_ALLREDUCE
                && n.is_power_of_two()
                && n > 1
                && !op.is_user()
                && op.commutative()
            {
                check_op(op, *elem)?;
                // SAFETY: forwarded.
                return unsafe { self.allreduce_direct(send, recv, *count, *elem, op, *in_place) };
            }
        }
        let h = self.start_handle(c, send, recv)?;
        self.eng.wait(&h).map(|_| ())
    }

    /// One step of a collective run in the calling thread: sends `len` bytes at `out` to
    /// world rank `to` and receives at most `cap` bytes into `into` from world rank `from`,
    /// on this communicator's collective context with `tag`; waits for both, failing with
    /// `PeerDied` if any of `members` dies meanwhile. A send to a rank that finished cleanly
    /// is not a failure (it did its part). Returns the receive's status.
    ///
    /// # Safety
    /// `out` readable for `len` bytes and `into` writable for `cap` bytes (non-null).
    #[allow(clippy::too_many_arguments)]
    unsafe fn exchange(
        &self,
        out: *const u8,
        len: usize,
        to: Rank,
        into: *mut u8,
        cap: usize,
        from: Rank,
        tag: crate::Tag,
        members: &[Rank],
    ) -> Result<crate::Status> {
        let ctx = self.info.ctx + 1;
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(out, len) };
        let pending = if self.eng.try_send_eager_now(bytes, to, tag, ctx) {
            None
        } else {
            Some(self.eng.post_send(out, len, to, tag, ctx, false)?)
        };
        let h = self.eng.post_recv_blocking(into, cap, from, tag, ctx);
        let got = self.eng.wait_coll_step(&h, members);
        crate::progress::recycle_cell(h);
        let got = got?;
        if let Some(s) = pending {
            match self.eng.wait_coll_step(&s, members) {
                Err(Error::PeerDied { rank, .. }) if self.eng.is_finished(rank) => {}
                r => {
                    r?;
                }
            }
        }
        Ok(got)
    }

    /// The dissemination barrier in the calling thread (see [`Comm::run_collective`]).
    fn barrier_direct(&self) -> Result<()> {
        let (me, n) = (self.rank(), self.size());
        let members = self.info.group.world_ranks();
        let tag = self.info.next_tag();
        let dangling = std::ptr::NonNull::<u8>::dangling().as_ptr();
        let mut d = 1;
        while d < n {
            let to = self.info.world_rank((me + d) % n);
            let from = self.info.world_rank((me + n - d) % n);
            // SAFETY: zero bytes at a dangling (non-null) pointer.
            unsafe { self.exchange(dangling, 0, to, dangling, 0, from, tag, members)? };
            d *= 2;
        }
        Ok(())
    }

    /// Recursive doubling in the calling thread (see [`Comm::run_collective`]).
    ///
    /// # Safety
    /// `recv` writable for `count` elements (and `send` readable unless `in_place`).
    unsafe fn allreduce_direct(
        &self,
        send: *const u8,
        recv: *mut u8,
        count: usize,
        elem: Elem,
        op: &Op,
        in_place: bool,
    ) -> Result<()> {
        let bytes = count * elem.size();
        if !in_place && bytes > 0 {
            // SAFETY: the caller's contract: both cover `bytes`; MPI forbids aliasing.
            unsafe { std::ptr::copy(send, recv, bytes) };
        }
        let (me, n) = (self.rank(), self.size());
        let members = self.info.group.world_ranks();
        let tag = self.info.next_tag();
        let mut tmp = [0u8; DIRECT_ALLREDUCE];
        let dangling = std::ptr::NonNull::<u8>::dangling().as_ptr();
        let acc = if bytes == 0 { dangling } else { recv };
        let mut mask = 1;
        while mask < n {
            let partner = self.info.world_rank(me ^ mask);
            // SAFETY: `acc` and `tmp` hold `bytes` bytes each (or `acc` is dangling for 0).
            let got = unsafe {
                self.exchange(
                    acc,
                    bytes,
                    partner,
                    tmp.as_mut_ptr(),
                    bytes,
                    partner,
                    tag,
                    members,
                )?
            };
            if got.len != bytes {
                return Err(Error::InvalidArgument {
                    what: "counts",
                    detail: format!(
                        "allreduce: rank {} contributed {} bytes where this rank has {bytes} \
                         (every rank must pass the same count and type)",
                        me ^ mask,
                        got.len
                    ),
                });
            }
            // SAFETY: `tmp` and `acc` hold `count` elements each and do not overlap; the
            // operation was checked against `elem`.
            unsafe { crate::coll::op::apply(op, elem, tmp.as_ptr(), acc, count) };
            mask <<= 1;
        }
        Ok(())
    }

    /// Returns once every rank of the communicator has entered the barrier (dissemination
    /// algorithm: ⌈log2 size⌉ rounds of zero-byte messages).
    ///
    /// # Errors
    /// [`Error::PeerDied`] if a member is gone before the barrier completes.
    pub fn barrier(&self) -> Result<()> {
        self.run(Collective::Barrier, std::ptr::null(), std::ptr::null_mut())
    }

    /// Broadcasts `buf` from `root` to every rank (binomial tree; scatter + ring allgather
    /// for ≥ 12 KiB on ≥ 8 ranks). Every rank passes a buffer of the same length.
    ///
    /// # Errors
    /// [`Error::InvalidRank`] (root), [`Error::PeerDied`]. A length that differs between
    /// ranks is erroneous (MPI): receivers fail with [`Error::Truncated`] or hang.
    pub fn bcast<T: Pod>(&self, buf: &mut [T], root: Rank) -> Result<()> {
        let b = bytes_of_mut(buf);
        self.run(
            Collective::Bcast { root, len: b.len() },
            std::ptr::null(),
            b.as_mut_ptr(),
        )
    }

    /// Combines `send` of every rank element-wise with `op` into `recv` on `root`
    /// (binomial tree). `recv` is ignored on the other ranks (pass `&mut []`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the root's `recv` is not as long as `send` or `op` is
    /// not defined on `T`; [`Error::InvalidRank`]; [`Error::PeerDied`].
    pub fn reduce<T: Reducible>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op,
        root: Rank,
    ) -> Result<()> {
        if self.rank() == root && recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Reduce {
            root,
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Combines `send` of every rank element-wise with `op` into `recv` on every rank
    /// (recursive doubling; ring reduce-scatter + allgather from 64 KiB; reduce + bcast for
    /// a non-commutative operation, in rank order).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the lengths differ or `op` is not defined on `T`;
    /// [`Error::PeerDied`].
    pub fn allreduce<T: Reducible>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        if recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Allreduce {
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// [`Comm::allreduce`] with `buf` as both input and result (MPI_IN_PLACE).
    ///
    /// # Errors
    /// As [`Comm::allreduce`].
    pub fn allreduce_in_place<T: Reducible>(&self, buf: &mut [T], op: Op) -> Result<()> {
        let c = Collective::Allreduce {
            count: buf.len(),
            elem: T::ELEM,
            op,
            in_place: true,
        };
        let b = bytes_of_mut(buf);
        self.run(c, b.as_ptr(), b.as_mut_ptr())
    }

    /// Gathers `send` of every rank into `recv` on `root`, rank r's at
    /// `recv[r * send.len()..]` (linear). `recv` (`size × send.len()` elements) is ignored
    /// elsewhere.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a root `recv` of the wrong length, [`Error::InvalidRank`],
    /// [`Error::PeerDied`].
    pub fn gather<T: Pod>(&self, send: &[T], recv: &mut [T], root: Rank) -> Result<()> {
        let n = self.size() as usize;
        if self.rank() == root && recv.len() != n * send.len() {
            return Err(len_mismatch("recv", recv.len(), n * send.len()));
        }

        let c = Collective::Gather {
            root,
            len: std::mem::size_of_val(send),
            blocks: uniform(self.size(), std::mem::size_of_val(send)),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Gathers `send` of each rank into the root's `recv` at `displs[r]` (elements),
    /// `counts[r]` elements from rank r (MPI_Gatherv).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if counts/displacements are not one per rank or do not fit
    /// in `recv`; as [`Comm::gather`].
    pub fn gatherv<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<()> {
        if self.rank() == root {
            self.check_v(recv.len(), counts, displs)?;
        }
        let esz = std::mem::size_of::<T>();
        let c = Collective::Gather {
            root,
            len: std::mem::size_of_val(send),
            blocks: blocks_of(counts, displs, esz),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    fn check_v(&self, len: usize, counts: &[usize], displs: &[usize]) -> Result<()> {
        let n = self.size() as usize;
        if counts.len() != n || displs.len() != n {
            return Err(bad(
                "counts",
                format!(
                    "{} counts and {} displacements for {n} ranks (one each per rank)",
                    counts.len(),
                    displs.len()
                ),
            ));
        }
        if let Some(r) = (0..n).find(|&r| displs[r].saturating_add(counts[r]) > len) {
            return Err(bad(
                "displacements",
                format!(
                    "rank {r}'s block ({} elements at {}) ends past the buffer of {len} elements",
                    counts[r], displs[r]
                ),
            ));
        }
        Ok(())
    }

    /// Scatters `send` of `root` (`size × recv.len()` elements, ignored elsewhere): rank r
    /// receives `send[r * recv.len()..]` into `recv` (linear).
    ///
    /// # Errors
    /// As [`Comm::gather`].
    pub fn scatter<T: Pod>(&self, send: &[T], recv: &mut [T], root: Rank) -> Result<()> {
        let n = self.size() as usize;
        if self.rank() == root && send.len() != n * recv.len() {
            return Err(len_mismatch("send", send.len(), n * recv.len()));
        }

        let c = Collective::Scatter {
            root,
            blocks: uniform(self.size(), std::mem::size_of_val(recv)),
            len: std::mem::size_of_val(recv),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Scatters blocks `counts[r]` elements at `displs[r]` of the root's `send` to rank r's
    /// `recv` (MPI_Scatterv).
    ///
    /// # Errors
    /// As [`Comm::gatherv`].
    pub fn scatterv<T: Pod>(
        &self,
        send: &[T],
        counts: &[usize],
        displs: &[usize],
        recv: &mut [T],
        root: Rank,
    ) -> Result<()> {
        if self.rank() == root {
            self.check_v(send.len(), counts, displs)?;
        }
        let esz = std::mem::size_of::<T>();
        let c = Collective::Scatter {
            root,
            blocks: blocks_of(counts, displs, esz),
            len: std::mem::size_of_val(recv),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Gathers `send` of every rank into `recv` on every rank, rank r's at
    /// `recv[r * send.len()..]` (linear up to 32 KiB in all, else ring).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `recv` is not `size × send.len()` long;
    /// [`Error::PeerDied`].
    pub fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let n = self.size() as usize;
        if recv.len() != n * send.len() {
            return Err(len_mismatch("recv", recv.len(), n * send.len()));
        }
        let c = Collective::Allgather {
            blocks: uniform(self.size(), std::mem::size_of_val(send)),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// MPI_Allgatherv: rank r's `counts[r]` elements land at `displs[r]` of every `recv`.
    ///
    /// # Errors
    /// As [`Comm::gatherv`], and if `send.len() != counts[rank]`.
    pub fn allgatherv<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        self.check_v(recv.len(), counts, displs)?;
        if counts[self.rank() as usize] != send.len() {
            return Err(len_mismatch(
                "send",
                send.len(),
                counts[self.rank() as usize],
            ));
        }
        let c = Collective::Allgather {
            blocks: blocks_of(counts, displs, std::mem::size_of::<T>()),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Sends block r of `send` to rank r and receives rank r's block into block r of
    /// `recv`; blocks are `send.len() / size` elements (linear for blocks ≤ 256 B, else
    /// pairwise exchange).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the lengths differ or are not a multiple of the size;
    /// [`Error::PeerDied`].
    pub fn alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let n = self.size() as usize;
        if send.len() != recv.len() || send.len() % n != 0 {
            return Err(bad(
                "buffer length",
                format!(
                    "send has {} and recv {} elements: both must have the same length, a \
                     multiple of the communicator size {n}",
                    send.len(),
                    recv.len()
                ),
            ));
        }
        let b = uniform(self.size(), std::mem::size_of_val(send) / n);
        let c = Collective::Alltoall {
            sblocks: b.clone(),
            rblocks: b,
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// MPI_Alltoallv: `scounts[r]` elements at `sdispls[r]` of `send` go to rank r, whose
    /// block lands at `rdispls[me]` of its `recv`.
    ///
    /// # Errors
    /// As [`Comm::gatherv`] for each side.
    #[allow(clippy::too_many_arguments)]
    pub fn alltoallv<T: Pod>(
        &self,
        send: &[T],
        scounts: &[usize],
        sdispls: &[usize],
        recv: &mut [T],
        rcounts: &[usize],
        rdispls: &[usize],
    ) -> Result<()> {
        self.check_v(send.len(), scounts, sdispls)?;
        self.check_v(recv.len(), rcounts, rdispls)?;
        let esz = std::mem::size_of::<T>();
        let c = Collective::Alltoall {
            sblocks: blocks_of(scounts, sdispls, esz),
            rblocks: blocks_of(rcounts, rdispls, esz),
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Combines `send` (`size × recv.len()` elements) of every rank with `op`; rank r
    /// receives block r of the result (MPI_Reduce_scatter_block; ring for commutative
    /// operations).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for mismatched lengths or an operation not defined on
    /// `T`; [`Error::PeerDied`].
    pub fn reduce_scatter_block<T: Reducible>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op,
    ) -> Result<()> {
        let n = self.size() as usize;
        if send.len() != n * recv.len() {
            return Err(len_mismatch("send", send.len(), n * recv.len()));
        }
        let c = Collective::ReduceScatter {
            counts: vec![recv.len(); n],
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// MPI_Reduce_scatter: rank r receives `counts[r]` elements of the result, which are
    /// laid out in rank order in `send` (`sum(counts)` elements).
    ///
    /// # Errors
    /// As [`Comm::reduce_scatter_block`].
    pub fn reduce_scatter<T: Reducible>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        op: Op,
    ) -> Result<()> {
        let n = self.size() as usize;
        if counts.len() != n || send.len() != counts.iter().sum::<usize>() {
            return Err(bad(
                "counts",
                format!(
                    "{} counts summing to {} for {n} ranks and a send buffer of {} elements",
                    counts.len(),
                    counts.iter().sum::<usize>(),
                    send.len()
                ),
            ));
        }
        if recv.len() != counts[self.rank() as usize] {
            return Err(len_mismatch(
                "recv",
                recv.len(),
                counts[self.rank() as usize],
            ));
        }
        let c = Collective::ReduceScatter {
            counts: counts.to_vec(),
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Inclusive prefix reduction: rank r receives `send(0) ⊕ … ⊕ send(r)` (recursive
    /// doubling, rank order kept).
    ///
    /// # Errors
    /// As [`Comm::allreduce`].
    pub fn scan<T: Reducible>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        self.scan_impl(send, recv, op, false)
    }

    /// Exclusive prefix reduction: rank r > 0 receives `send(0) ⊕ … ⊕ send(r−1)`; rank 0's
    /// `recv` is left unchanged.
    ///
    /// # Errors
    /// As [`Comm::allreduce`].
    pub fn exscan<T: Reducible>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        self.scan_impl(send, recv, op, true)
    }

    fn scan_impl<T: Reducible>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op,
        exclusive: bool,
    ) -> Result<()> {
        if recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Scan {
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
            exclusive,
        };
        self.run(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    // ---- communicators ------------------------------------------------------------------

    /// The communicator's group.
    pub fn group(&self) -> Group {
        self.info.group.clone()
    }

    /// The communicator's name (MPI_Comm_get_name): "MPI_COMM_WORLD" for the world, else
    /// what [`Comm::set_name`] set (empty by default).
    pub fn name(&self) -> String {
        self.info.name.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Names the communicator (local; at most 127 bytes are kept, as MPI_MAX_OBJECT_NAME).
    pub fn set_name(&self, name: &str) {
        let mut end = name.len().min(127);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        if let Ok(mut n) = self.info.name.lock() {
            *n = name[..end].to_string();
        }
    }

    /// [`Compare::Ident`] for the same communicator (a clone), [`Compare::Congruent`] for
    /// the same ranks in the same order (e.g. a [`Comm::dup`]), [`Compare::Similar`] for the
    /// same ranks in another order, else [`Compare::Unequal`] (MPI_Comm_compare).
    pub fn compare(&self, other: &Comm) -> Compare {
        if Arc::ptr_eq(&self.info, &other.info) {
            return Compare::Ident;
        }
        match self.info.group.compare(&other.info.group) {
            Compare::Ident => Compare::Congruent,
            c => c,
        }
    }

    /// Frees the communicator (MPI_Comm_free): this handle goes; the context ids return
    /// to the pool once every clone is dropped. Pending operations on it complete.
    pub fn free(self) {}

    /// Agrees with every rank of this communicator on a slot of context ids free on all of
    /// them (collective).
    fn agree_slot(&self) -> Result<usize> {
        let ctxs = &self.info.world.ctxs;
        loop {
            let mask = ctxs.lock().map(|c| c.mask()).unwrap_or([0; WORDS]);
            let mut all = [0u64; WORDS];
            self.allreduce(&mask, &mut all, Op::Band)?;
            let Some(slot) = lowest(&all) else {
                return Err(Error::Unsupported(format!(
                    "no context id is free on every rank: at most {} communicators may exist at once",
                    super::context::SLOTS - 2
                )));
            };
            let ok = ctxs.lock().map(|mut c| c.take(slot)).unwrap_or(false);
            let mut agree = [0u8];
            self.allreduce(&[u8::from(ok)], &mut agree, Op::Band)?;
            if agree[0] == 1 {
                return Ok(slot);
            }
            if ok {
                if let Ok(mut c) = ctxs.lock() {
                    c.release(slot);
                }
            }
        }
    }

    fn with_group(&self, slot: usize, members: Vec<Rank>) -> Comm {
        let me_world = self.eng.rank();
        let group = Group::from_world(members, me_world);
        let n = group.size();
        let rank = group.rank().unwrap_or(0);
        let mut rev = vec![u32::MAX; self.eng.size() as usize];
        for (i, &w) in group.world_ranks().iter().enumerate() {
            rev[w as usize] = i as Rank;
        }
        let identity = rev.iter().enumerate().all(|(i, &r)| r == i as u32);
        Comm {
            eng: self.eng.clone(),
            info: Arc::new(CommInfo {
                world: self.info.world.clone(),
                ctx: (2 * slot) as u16,
                rank,
                size: n,
                group,
                rev: (!identity).then_some(rev),
                seq: AtomicU32::new(0),
                name: Mutex::new(String::new()),
            }),
        }
    }

    /// A new communicator with the same ranks in the same order and new contexts
    /// (MPI_Comm_dup): its messages never match this one's. Collective.
    ///
    /// # Errors
    /// [`Error::PeerDied`]; [`Error::Unsupported`] if no context id is free.
    pub fn dup(&self) -> Result<Comm> {
        let slot = self.agree_slot()?;
        Ok(self.with_group(slot, self.info.group.world_ranks().to_vec()))
    }

    /// Partitions the ranks by `color` (`None`: this rank joins no communicator and gets
    /// `None`, MPI_UNDEFINED), ordered by `key` then by rank here (MPI_Comm_split).
    /// Collective: every rank of this communicator calls it.
    ///
    /// # Errors
    /// As [`Comm::dup`].
    pub fn split(&self, color: Option<u32>, key: i32) -> Result<Option<Comm>> {
        let mine = [color.map_or(-1, i64::from), i64::from(key)];
        let mut all = vec![0i64; 2 * self.size() as usize];
        self.allgather(&mine, &mut all)?;
        let slot = self.agree_slot()?;
        let Some(c) = color else {
            if let Ok(mut t) = self.info.world.ctxs.lock() {
                t.release(slot);
            }
            return Ok(None);
        };
        let mut members: Vec<(i64, Rank)> = (0..self.size())
            .filter(|&r| all[2 * r as usize] == i64::from(c))
            .map(|r| (all[2 * r as usize + 1], r))
            .collect();
        members.sort_unstable();
        let world = members
            .into_iter()
            .map(|(_, r)| self.info.world_rank(r))
            .collect();
        Ok(Some(self.with_group(slot, world)))
    }

    /// Splits by node: ranks that share this rank's memory (served by shared memory, or
    /// this rank itself) form one communicator, ordered by `key` then rank
    /// (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED). Collective.
    ///
    /// # Errors
    /// As [`Comm::dup`].
    pub fn split_shared(&self, key: i32) -> Result<Comm> {
        let color = self.eng.node_leader();
        self.split(Some(color), key)?
            .ok_or_else(|| Error::Unsupported("internal: split_shared gave no communicator".into()))
    }

    /// The communicator of the members of `group` (a subgroup of this communicator's, the
    /// same on every rank), in the group's order; ranks outside get `None`
    /// (MPI_Comm_create). Collective over this communicator.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `group` has a rank that is not a member here; as
    /// [`Comm::dup`].
    pub fn create(&self, group: &Group) -> Result<Option<Comm>> {
        if let Some(w) = group
            .world_ranks()
            .iter()
            .find(|w| !self.info.group.world_ranks().contains(w))
        {
            return Err(bad(
                "group",
                format!("world rank {w} is not a member of this communicator"),
            ));
        }
        let slot = self.agree_slot()?;
        let me = self.eng.rank();
        if !group.world_ranks().contains(&me) {
            if let Ok(mut t) = self.info.world.ctxs.lock() {
                t.release(slot);
            }
            return Ok(None);
        }
        Ok(Some(self.with_group(slot, group.world_ranks().to_vec())))
    }
}

fn len_mismatch(which: &'static str, got: usize, want: usize) -> Error {
    bad(
        "buffer length",
        format!("{which} has {got} elements where {want} are needed"),
    )
}

/// Nonblocking collectives: each returns a [`Request`] of the scope, which progresses like
/// point-to-point requests (in the interrupt modes, in the handler while the application
/// computes; in `thread` mode, in the progress thread).
impl<'s, 'env> Scope<'s, 'env> {
    fn start_coll(&'s self, c: Collective, send: *const u8, recv: *mut u8) -> Result<Request<'s>> {
        self.comm().eng.background_progress();
        let h = self.comm().start_handle(&c, send, recv)?;
        Ok(self.track(h))
    }

    /// Nonblocking [`Comm::barrier`] (MPI_Ibarrier).
    ///
    /// # Errors
    /// From [`Request::wait`]: [`Error::PeerDied`].
    pub fn ibarrier(&'s self) -> Result<Request<'s>> {
        self.start_coll(Collective::Barrier, std::ptr::null(), std::ptr::null_mut())
    }

    /// Nonblocking [`Comm::bcast`] (MPI_Ibcast).
    ///
    /// # Errors
    /// As [`Comm::bcast`].
    pub fn ibcast<T: Pod>(&'s self, buf: &'s mut [T], root: Rank) -> Result<Request<'s>> {
        let b = bytes_of_mut(buf);
        let c = Collective::Bcast { root, len: b.len() };
        self.start_coll(c, std::ptr::null(), b.as_mut_ptr())
    }

    /// Nonblocking [`Comm::reduce`] (MPI_Ireduce).
    ///
    /// # Errors
    /// As [`Comm::reduce`].
    pub fn ireduce<T: Reducible>(
        &'s self,
        send: &'s [T],
        recv: &'s mut [T],
        op: Op,
        root: Rank,
    ) -> Result<Request<'s>> {
        if self.comm().rank() == root && recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Reduce {
            root,
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::allreduce`] (MPI_Iallreduce).
    ///
    /// # Errors
    /// As [`Comm::allreduce`].
    pub fn iallreduce<T: Reducible>(
        &'s self,
        send: &'s [T],
        recv: &'s mut [T],
        op: Op,
    ) -> Result<Request<'s>> {
        if recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Allreduce {
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::allgather`] (MPI_Iallgather).
    ///
    /// # Errors
    /// As [`Comm::allgather`].
    pub fn iallgather<T: Pod>(&'s self, send: &'s [T], recv: &'s mut [T]) -> Result<Request<'s>> {
        let n = self.comm().size() as usize;
        if recv.len() != n * send.len() {
            return Err(len_mismatch("recv", recv.len(), n * send.len()));
        }
        let c = Collective::Allgather {
            blocks: uniform(n as u32, std::mem::size_of_val(send)),
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::alltoall`] (MPI_Ialltoall).
    ///
    /// # Errors
    /// As [`Comm::alltoall`].
    pub fn ialltoall<T: Pod>(&'s self, send: &'s [T], recv: &'s mut [T]) -> Result<Request<'s>> {
        let n = self.comm().size() as usize;
        if send.len() != recv.len() || send.len() % n != 0 {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let b = uniform(n as u32, std::mem::size_of_val(send) / n);
        let c = Collective::Alltoall {
            sblocks: b.clone(),
            rblocks: b,
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::gather`] (MPI_Igather).
    ///
    /// # Errors
    /// As [`Comm::gather`].
    pub fn igather<T: Pod>(
        &'s self,
        send: &'s [T],
        recv: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let n = self.comm().size() as usize;
        if self.comm().rank() == root && recv.len() != n * send.len() {
            return Err(len_mismatch("recv", recv.len(), n * send.len()));
        }
        let c = Collective::Gather {
            root,
            len: std::mem::size_of_val(send),
            blocks: uniform(n as u32, std::mem::size_of_val(send)),
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::scatter`] (MPI_Iscatter).
    ///
    /// # Errors
    /// As [`Comm::scatter`].
    pub fn iscatter<T: Pod>(
        &'s self,
        send: &'s [T],
        recv: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let n = self.comm().size() as usize;
        if self.comm().rank() == root && send.len() != n * recv.len() {
            return Err(len_mismatch("send", send.len(), n * recv.len()));
        }
        let c = Collective::Scatter {
            root,
            blocks: uniform(n as u32, std::mem::size_of_val(recv)),
            len: std::mem::size_of_val(recv),
            in_place: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }

    /// Nonblocking [`Comm::scan`] (MPI_Iscan).
    ///
    /// # Errors
    /// As [`Comm::scan`].
    pub fn iscan<T: Reducible>(
        &'s self,
        send: &'s [T],
        recv: &'s mut [T],
        op: Op,
    ) -> Result<Request<'s>> {
        if recv.len() != send.len() {
            return Err(len_mismatch("recv", recv.len(), send.len()));
        }
        let c = Collective::Scan {
            count: send.len(),
            elem: T::ELEM,
            op,
            in_place: false,
            exclusive: false,
        };
        self.start_coll(c, bytes_of(send).as_ptr(), bytes_of_mut(recv).as_mut_ptr())
    }
}
