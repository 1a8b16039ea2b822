//! Collective schedules: what a rank does in a collective operation, as rounds of sends,
//! receives and local steps, with no I/O (in the spirit of libNBC's schedules, Hoefler et
//! al., "Implementation and Performance Analysis of Non-Blocking Collective Operations for
//! MPI", SC'07, and MPICH's transport-based collectives).
//!
//! Owns the [`Schedule`] data type and its builder. Algorithms (`coll::*`) build schedules;
//! the progress engine (`progress::coll`) runs them. This module never touches a buffer,
//! a request or the engine.
//!
//! A round runs its local steps ([`Step::Copy`], [`Step::Reduce`]) in order, then posts all
//! its sends and receives at once; the next round starts when all of them completed. So a
//! buffer sent in round k may be overwritten from round k+1 on, and data received in round
//! k is read from round k+1 on.

use crate::Rank;

/// Which buffer a step addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The caller's send buffer (read only).
    Send,
    /// The caller's receive buffer.
    Recv,
    /// A temporary buffer owned by the running schedule ([`Schedule::tmp`]).
    Tmp(usize),
}

/// A byte position in one of the buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub buf: Buf,
    /// Offset, bytes.
    pub off: usize,
}

impl Buf {
    /// Position `off` bytes into this buffer.
    pub fn at(self, off: usize) -> At {
        At { buf: self, off }
    }
}

/// One step of a round. Peers are ranks of the collective's communicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send `len` bytes from `at` to `to`.
    Send { at: At, len: usize, to: Rank },
    /// Receive exactly `len` bytes into `at` from `from`.
    Recv { at: At, len: usize, from: Rank },
    /// Copy `len` bytes (the regions may overlap).
    Copy { from: At, to: At, len: usize },
    /// Combine `count` elements: `into = from ⊕ into` (`from` is the left operand, as
    /// MPI's `inoutvec = invec op inoutvec`); with `rev`, `into = into ⊕ from` (then
    /// `from` must be writable: it is used as scratch).
    Reduce {
        from: At,
        into: At,
        count: usize,
        rev: bool,
    },
}

impl Step {
    /// `true` for a send or a receive.
    pub fn is_comm(&self) -> bool {
        matches!(self, Step::Send { .. } | Step::Recv { .. })
    }
}

/// A collective operation as seen by one rank: rounds of steps, stored flat (`steps`, and
/// where each round ends) so that building one costs few allocations, and the temporary
/// buffers they use (sizes in bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    steps: Vec<Step>,
    /// End (exclusive index into `steps`) of each closed round.
    ends: Vec<usize>,
    pub tmps: Vec<usize>,
}

impl Schedule {
    /// An empty schedule (completes at once).
    pub fn new() -> Schedule {
        Schedule {
            steps: Vec::with_capacity(8),
            ends: Vec::with_capacity(4),
            tmps: Vec::new(),
        }
    }

    /// A temporary buffer of `bytes`.
    pub fn tmp(&mut self, bytes: usize) -> Buf {
        self.tmps.push(bytes);
        Buf::Tmp(self.tmps.len() - 1)
    }

    fn open_start(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Starts a new round; the following steps go into it.
    pub fn round(&mut self) -> &mut Self {
        if self.steps.len() > self.open_start() {
            self.ends.push(self.steps.len());
        }
        self
    }

    fn push(&mut self, s: Step) -> &mut Self {
        self.steps.push(s);
        self
    }

    /// Number of rounds.
    pub fn rounds(&self) -> usize {
        self.ends.len() + usize::from(self.steps.len() > self.open_start())
    }

    /// The steps of round `i` (`i < rounds()`).
    pub fn round_steps(&self, i: usize) -> &[Step] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends.get(i).copied().unwrap_or(self.steps.len());
        &self.steps[start..end]
    }

    /// Adds a send to the current round (zero-byte messages synchronize, as in the
    /// barrier).
    pub fn send(&mut self, at: At, len: usize, to: Rank) -> &mut Self {
        self.push(Step::Send { at, len, to })
    }

    /// Adds a receive to the current round.
    pub fn recv(&mut self, at: At, len: usize, from: Rank) -> &mut Self {
        self.push(Step::Recv { at, len, from })
    }

    /// Adds a copy to the current round (skipped when empty or from a place to itself).
    pub fn copy(&mut self, from: At, to: At, len: usize) -> &mut Self {
        if len == 0 || from == to {
            return self;
        }
        self.push(Step::Copy { from, to, len })
    }

    /// Adds `into = from ⊕ into` (or `into ⊕ from` with `rev`) over `count` elements.
    pub fn reduce(&mut self, from: At, into: At, count: usize, rev: bool) -> &mut Self {
        if count == 0 {
            return self;
        }
        self.push(Step::Reduce {
            from,
            into,
            count,
            rev,
        })
    }

    /// Most sends and receives of any round (requests the executor reserves).
    pub fn max_round_comm(&self) -> usize {
        (0..self.rounds())
            .map(|i| self.round_steps(i).iter().filter(|s| s.is_comm()).count())
            .max()
            .unwrap_or(0)
    }

    /// Number of sends and receives in all.
    pub fn comm_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.is_comm()).count()
    }

    /// Appends `other`'s rounds after this schedule's (its temporary buffers renumbered).
    pub fn then(&mut self, other: Schedule) -> &mut Self {
        self.round();
        let base = self.tmps.len();
        let fix = |a: At| match a.buf {
            Buf::Tmp(i) => Buf::Tmp(i + base).at(a.off),
            _ => a,
        };
        self.tmps.extend(other.tmps);
        let offset = self.steps.len();
        for s in other.steps {
            self.steps.push(match s {
                Step::Send { at, len, to } => Step::Send {
                    at: fix(at),
                    len,
                    to,
                },
                Step::Recv { at, len, from } => Step::Recv {
                    at: fix(at),
                    len,
                    from,
                },
                Step::Copy { from, to, len } => Step::Copy {
                    from: fix(from),
                    to: fix(to),
                    len,
                },
                Step::Reduce {
                    from,
                    into,
                    count,
                    rev,
                } => Step::Reduce {
                    from: fix(from),
                    into: fix(into),
                    count,
                    rev,
                },
            });
        }
        self.ends.extend(other.ends.iter().map(|e| e + offset));
        self
    }
}

/// Byte blocks `(offset, len)` of `count` elements of `esz` bytes split in `n` parts as
/// evenly as possible (the first `count % n` parts one element longer).
pub(crate) fn even_blocks(count: usize, esz: usize, n: u32) -> Vec<(usize, usize)> {
    let n = n as usize;
    let (base, extra) = (count / n, count % n);
    (0..n)
        .map(|i| {
            (
                (i * base + i.min(extra)) * esz,
                (base + usize::from(i < extra)) * esz,
            )
        })
        .collect()
}
