//! The derived-datatype constructors (MPI-4.1/5.0 §5.1.2 "Datatype Constructors",
//! §5.1.7 "Extent and Bounds of Datatypes", §5.1.10 "Duplicating a Datatype").
//!
//! Each constructor builds the flattened type map of one element of the new type (blocks in
//! type-map order, adjacent ones merged) and its bounds. The bounds follow MPICH (whose
//! rules are the standard's for types without explicit bounds):
//!
//! * `n` consecutive copies of `old` at byte displacement `d` span
//!   `[d + lb(old) + min(0, (n-1)·extent(old)), d + ub(old) + max(0, (n-1)·extent(old)))`;
//!   a constructor's `lb` / `ub` are the min / max over its blocks of nonzero length.
//! * `MPI_Type_create_struct` then pads the extent up to a multiple of the largest alignment
//!   of the basic types it contains (the standard's epsilon, §5.1.6): `{double, char}` has
//!   extent 16. The other constructors do not pad (their old type's extent already is).
//! * `MPI_Type_create_resized` sets `lb` and `extent` as given; they are inherited by types
//!   built on it (through the rule above), and a struct still pads them.
//! * A constructor whose result has no data (count 0, all block lengths 0, or an old type
//!   of size 0) returns an empty type with `lb = ub = true_lb = true_ub = 0`, as MPICH does.
//!
//! Negative strides and displacements are allowed. Counts and block lengths are `i64` so
//! that negative values from C are reported ([`DtypeError::NegativeCount`]) rather than
//! wrapped; all arithmetic is checked ([`DtypeError::Overflow`]).

use std::sync::Arc;

use super::{Basic, Block, Combiner, Datatype, DtypeError, MAX_BLOCKS};

type Result<T> = std::result::Result<T, DtypeError>;

/// Turns an arithmetic overflow into [`DtypeError::Overflow`].
fn ck<T>(v: Option<T>) -> Result<T> {
    v.ok_or(DtypeError::Overflow)
}

/// A count or block length that must not be negative.
fn nonneg(what: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| DtypeError::NegativeCount { what, value })
}

/// `u64` to `isize`, or [`DtypeError::Overflow`].
fn to_isize(v: u64) -> Result<isize> {
    isize::try_from(v).map_err(|_| DtypeError::Overflow)
}

/// Appends the block `(disp, len)`, merging it into the last block if it starts where that
/// one ends. Blocks of length 0 are dropped.
pub(crate) fn push_block(out: &mut Vec<Block>, disp: isize, len: usize) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if let Some(last) = out.last_mut() {
        if last.disp.checked_add(last.len as isize) == Some(disp) {
            last.len = ck(last.len.checked_add(len))?;
            return Ok(());
        }
    }
    if out.len() >= MAX_BLOCKS {
        return Err(DtypeError::TooComplex);
    }
    out.push(Block { disp, len });
    Ok(())
}

/// Offsets of the blocks in the packed stream of one element.
pub(crate) fn prefix_of(blocks: &[Block]) -> Vec<usize> {
    let mut acc = 0usize;
    blocks
        .iter()
        .map(|b| {
            let at = acc;
            acc = acc.saturating_add(b.len);
            at
        })
        .collect()
}

/// Accumulates the blocks of a new type: each [`add`](Builder::add) appends `n` consecutive
/// copies of an old type at a byte displacement, in type-map order.
struct Builder {
    blocks: Vec<Block>,
    size: usize,
    n_elements: u64,
    /// `None`: no data yet; `Some(k)`: the common kind so far (`Some(None)`: mixed).
    kind: Option<Option<Basic>>,
    /// `(lb, ub)` over the blocks of nonzero length so far.
    bounds: Option<(isize, isize)>,
    align: usize,
    /// Copy iterations left (bounds the time spent on types whose copies merge).
    budget: usize,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            blocks: Vec::new(),
            size: 0,
            n_elements: 0,
            kind: None,
            bounds: None,
            align: 1,
            budget: 4 * MAX_BLOCKS,
        }
    }

    fn spend(&mut self, n: usize) -> Result<()> {
        self.budget = self.budget.checked_sub(n).ok_or(DtypeError::TooComplex)?;
        Ok(())
    }

    /// Appends `n` copies of `old`, the first at byte displacement `disp`, the next ones
    /// every `extent(old)` bytes.
    fn add(&mut self, disp: isize, n: u64, old: &Datatype) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let ext = old.extent();
        let span = ck(to_isize(n - 1)?.checked_mul(ext))?;
        let lo = ck(ck(disp.checked_add(old.lb))?.checked_add(span.min(0)))?;
        let hi = ck(ck(disp.checked_add(old.ub))?.checked_add(span.max(0)))?;
        self.bounds = Some(match self.bounds {
            None => (lo, hi),
            Some((l, u)) => (l.min(lo), u.max(hi)),
        });
        self.align = self.align.max(old.align);
        let n_usize = usize::try_from(n).map_err(|_| DtypeError::Overflow)?;
        self.size = ck(self.size.checked_add(ck(n_usize.checked_mul(old.size))?))?;
        self.n_elements = ck(self
            .n_elements
            .checked_add(ck(n.checked_mul(old.n_elements))?))?;
        if old.size > 0 {
            self.kind = Some(match self.kind {
                None => old.kind,
                Some(k) if k == old.kind => k,
                Some(_) => None,
            });
        }
        if old.blocks.is_empty() {
            return Ok(());
        }
        if old.is_contiguous() {
            // The copies are back to back: one block.
            let b = old.blocks[0];
            self.spend(1)?;
            let at = ck(disp.checked_add(b.disp))?;
            return push_block(&mut self.blocks, at, ck(n_usize.checked_mul(b.len))?);
        }
        // Copies of a non-contiguous type never merge except one block per copy boundary:
        // each adds at least `max(1, blocks - 1)` blocks. Refuse early what cannot fit.
        let per_copy = (old.blocks.len() as u64 - 1).max(1);
        let at_least = n.saturating_mul(per_copy).saturating_sub(1);
        if at_least > (MAX_BLOCKS - self.blocks.len()) as u64 {
            return Err(DtypeError::TooComplex);
        }
        let mut base = disp;
        for k in 0..n {
            self.spend(old.blocks.len())?;
            for b in &old.blocks {
                push_block(&mut self.blocks, ck(base.checked_add(b.disp))?, b.len)?;
            }
            if k + 1 < n {
                base = ck(base.checked_add(ext))?;
            }
        }
        Ok(())
    }

    /// The new type; `pad` applies the struct alignment epsilon to the upper bound.
    fn finish(self, combiner: Combiner, pad: bool) -> Result<Arc<Datatype>> {
        if self.size == 0 {
            return Ok(Arc::new(empty(combiner)));
        }
        let (lb, mut ub) = self.bounds.unwrap_or((0, 0));
        if pad && self.align > 1 {
            let align = self.align as isize;
            let eps = ck(ub.checked_sub(lb))?.rem_euclid(align);
            if eps != 0 {
                ub = ck(ub.checked_add(align - eps))?;
            }
        }
        let mut true_lb = isize::MAX;
        let mut true_ub = isize::MIN;
        for b in &self.blocks {
            true_lb = true_lb.min(b.disp);
            true_ub = true_ub.max(ck(b.disp.checked_add(b.len as isize))?);
        }
        if self.blocks.is_empty() {
            true_lb = 0;
            true_ub = 0;
        }
        // Everything a later pack computes from these must fit too.
        ck(ub.checked_sub(lb))?;
        ck(true_ub.checked_sub(true_lb))?;
        Ok(Arc::new(Datatype::new_derived(
            self.blocks,
            self.size,
            lb,
            ub,
            true_lb,
            true_ub,
            self.align,
            self.n_elements,
            self.kind.flatten(),
            combiner,
        )))
    }
}

/// The empty type (no data, all bounds 0).
fn empty(combiner: Combiner) -> Datatype {
    Datatype::new_derived(Vec::new(), 0, 0, 0, 0, 0, 1, 0, None, combiner)
}

/// `MPI_Type_contiguous(count, oldtype)` (§5.1.2): `count` copies of `old`, each
/// `extent(old)` bytes after the previous.
///
/// Errors: `count < 0` ([`DtypeError::NegativeCount`]), overflow, [`DtypeError::TooComplex`].
pub fn contiguous(count: i64, old: &Arc<Datatype>) -> Result<Arc<Datatype>> {
    let n = nonneg("count", count)?;
    let combiner = Combiner::Contiguous {
        count,
        old: old.clone(),
    };
    let mut b = Builder::new();
    if old.size > 0 {
        b.add(0, n, old)?;
    }
    b.finish(combiner, false)
}

/// Shared by `vector` and `hvector`: `count` blocks of `blocklength` copies of `old`, block
/// `i` at `i * stride` bytes.
fn vector_bytes(
    count: u64,
    blocklength: u64,
    stride: isize,
    old: &Datatype,
    combiner: Combiner,
) -> Result<Arc<Datatype>> {
    let mut b = Builder::new();
    if count == 0 || blocklength == 0 || old.size == 0 {
        return b.finish(combiner, false);
    }
    let block_bytes = ck(to_isize(blocklength)?.checked_mul(old.extent()))?;
    if old.is_contiguous() && stride == block_bytes {
        // The blocks are back to back: a contiguous type of count * blocklength.
        b.add(0, ck(count.checked_mul(blocklength))?, old)?;
        return b.finish(combiner, false);
    }
    // Blocks that are not back to back never merge: at least one block each.
    if count > MAX_BLOCKS as u64 {
        return Err(DtypeError::TooComplex);
    }
    let mut disp = 0isize;
    for i in 0..count {
        b.add(disp, blocklength, old)?;
        if i + 1 < count {
            disp = ck(disp.checked_add(stride))?;
        }
    }
    b.finish(combiner, false)
}

/// `MPI_Type_vector(count, blocklength, stride, oldtype)` (§5.1.2): `count` blocks of
/// `blocklength` consecutive copies of `old`; block `i` starts at `i * stride *
/// extent(old)` bytes (`stride` in elements; may be negative or zero).
///
/// Errors: `count < 0` or `blocklength < 0`, overflow, too many blocks.
pub fn vector(
    count: i64,
    blocklength: i64,
    stride: i64,
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    let n = nonneg("count", count)?;
    let bl = nonneg("blocklength", blocklength)?;
    let stride_bytes = ck(isize::try_from(stride)
        .ok()
        .and_then(|s| s.checked_mul(old.extent())))?;
    let combiner = Combiner::Vector {
        count,
        blocklength,
        stride,
        old: old.clone(),
    };
    vector_bytes(n, bl, stride_bytes, old, combiner)
}

/// `MPI_Type_create_hvector(count, blocklength, stride, oldtype)` (§5.1.2): as [`vector`]
/// with the stride in bytes.
///
/// Errors: `count < 0` or `blocklength < 0`, overflow, too many blocks.
pub fn hvector(
    count: i64,
    blocklength: i64,
    stride: isize,
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    let n = nonneg("count", count)?;
    let bl = nonneg("blocklength", blocklength)?;
    let combiner = Combiner::Hvector {
        count,
        blocklength,
        stride,
        old: old.clone(),
    };
    vector_bytes(n, bl, stride, old, combiner)
}

/// Shared by the indexed constructors: block `i` is `blocklengths[i]` copies of `old` at
/// `displacements[i]` bytes.
fn indexed_bytes(
    blocklengths: &[u64],
    displs: &[isize],
    old: &Datatype,
    combiner: Combiner,
) -> Result<Arc<Datatype>> {
    let mut b = Builder::new();
    if old.size > 0 {
        for (&n, &d) in blocklengths.iter().zip(displs) {
            b.add(d, n, old)?;
        }
    }
    b.finish(combiner, false)
}

/// Element displacements to byte displacements (`d * extent(old)`).
fn elems_to_bytes(displs: &[i64], old: &Datatype) -> Result<Vec<isize>> {
    displs
        .iter()
        .map(|&d| {
            ck(isize::try_from(d)
                .ok()
                .and_then(|d| d.checked_mul(old.extent())))
        })
        .collect()
}

/// Checks every block length, returning them as `u64`.
fn blocklengths_of(blocklengths: &[i64]) -> Result<Vec<u64>> {
    blocklengths
        .iter()
        .map(|&n| nonneg("blocklength", n))
        .collect()
}

/// `MPI_Type_indexed(count, blocklengths, displacements, oldtype)` (§5.1.2): block `i` is
/// `blocklengths[i]` copies of `old` at `displacements[i] * extent(old)` bytes
/// (displacements in elements, any sign, any order).
///
/// Errors: arrays of different lengths ([`DtypeError::LengthMismatch`]), a negative block
/// length, overflow, too many blocks.
pub fn indexed(
    blocklengths: &[i64],
    displacements: &[i64],
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    if blocklengths.len() != displacements.len() {
        return Err(DtypeError::LengthMismatch);
    }
    let bls = blocklengths_of(blocklengths)?;
    let displs = elems_to_bytes(displacements, old)?;
    let combiner = Combiner::Indexed {
        blocklengths: blocklengths.to_vec(),
        displacements: displacements.to_vec(),
        old: old.clone(),
    };
    indexed_bytes(&bls, &displs, old, combiner)
}

/// `MPI_Type_create_hindexed(count, blocklengths, displacements, oldtype)` (§5.1.2): as
/// [`indexed`] with displacements in bytes.
///
/// Errors: as [`indexed`].
pub fn hindexed(
    blocklengths: &[i64],
    displacements: &[isize],
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    if blocklengths.len() != displacements.len() {
        return Err(DtypeError::LengthMismatch);
    }
    let bls = blocklengths_of(blocklengths)?;
    let combiner = Combiner::Hindexed {
        blocklengths: blocklengths.to_vec(),
        displacements: displacements.to_vec(),
        old: old.clone(),
    };
    indexed_bytes(&bls, displacements, old, combiner)
}

/// `MPI_Type_create_indexed_block(count, blocklength, displacements, oldtype)` (§5.1.2):
/// [`indexed`] with the same block length for every block; displacements in elements.
///
/// Errors: `blocklength < 0`, overflow, too many blocks.
pub fn indexed_block(
    blocklength: i64,
    displacements: &[i64],
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    let bl = nonneg("blocklength", blocklength)?;
    let displs = elems_to_bytes(displacements, old)?;
    let combiner = Combiner::IndexedBlock {
        blocklength,
        displacements: displacements.to_vec(),
        old: old.clone(),
    };
    indexed_bytes(&vec![bl; displs.len()], &displs, old, combiner)
}

/// `MPI_Type_create_hindexed_block(count, blocklength, displacements, oldtype)` (§5.1.2):
/// [`indexed_block`] with displacements in bytes.
///
/// Errors: `blocklength < 0`, overflow, too many blocks.
pub fn hindexed_block(
    blocklength: i64,
    displacements: &[isize],
    old: &Arc<Datatype>,
) -> Result<Arc<Datatype>> {
    let bl = nonneg("blocklength", blocklength)?;
    let combiner = Combiner::HindexedBlock {
        blocklength,
        displacements: displacements.to_vec(),
        old: old.clone(),
    };
    indexed_bytes(&vec![bl; displacements.len()], displacements, old, combiner)
}

/// `MPI_Type_create_struct(count, blocklengths, displacements, types)` (§5.1.2): block `i`
/// is `blocklengths[i]` copies of `types[i]` at `displacements[i]` bytes. The extent is
/// padded to a multiple of the largest alignment of the basic types in the blocks of
/// nonzero length (the epsilon of §5.1.6, as MPICH computes it): `{MPI_DOUBLE at 0,
/// MPI_CHAR at 8}` has size 9 and extent 16.
///
/// Errors: arrays of different lengths, a negative block length, overflow, too many blocks.
pub fn create_struct(
    blocklengths: &[i64],
    displacements: &[isize],
    types: &[Arc<Datatype>],
) -> Result<Arc<Datatype>> {
    if blocklengths.len() != displacements.len() || blocklengths.len() != types.len() {
        return Err(DtypeError::LengthMismatch);
    }
    let bls = blocklengths_of(blocklengths)?;
    let combiner = Combiner::Struct {
        blocklengths: blocklengths.to_vec(),
        displacements: displacements.to_vec(),
        types: types.to_vec(),
    };
    let mut b = Builder::new();
    for ((&n, &d), t) in bls.iter().zip(displacements).zip(types) {
        b.add(d, n, t)?;
    }
    b.finish(combiner, true)
}

/// `MPI_Type_create_resized(oldtype, lb, extent)` (§5.1.7): the type map of `old` with lower
/// bound `lb` and upper bound `lb + extent` (bytes; `extent` may be smaller than the data's
/// span, zero or negative). Size, true bounds and the basic kind are those of `old`.
///
/// Errors: `lb + extent` overflows.
pub fn resized(old: &Arc<Datatype>, lb: isize, extent: isize) -> Result<Arc<Datatype>> {
    let ub = ck(lb.checked_add(extent))?;
    Ok(Arc::new(Datatype::new_derived(
        old.blocks.clone(),
        old.size,
        lb,
        ub,
        old.true_lb,
        old.true_ub,
        old.align,
        old.n_elements,
        old.kind,
        Combiner::Resized {
            lb,
            extent,
            old: old.clone(),
        },
    )))
}

/// `MPI_Type_dup(oldtype)` (§5.1.10): a new type with the same type map and bounds as
/// `old` (combiner `MPI_COMBINER_DUP`; the name is not copied). Never fails; returns a
/// `Result` like the other constructors.
pub fn dup(old: &Arc<Datatype>) -> Result<Arc<Datatype>> {
    Ok(Arc::new(Datatype::new_derived(
        old.blocks.clone(),
        old.size,
        old.lb,
        old.ub,
        old.true_lb,
        old.true_ub,
        old.align,
        old.n_elements,
        old.kind,
        Combiner::Dup(old.clone()),
    )))
}
