//! # The MPI datatype engine
//!
//! Owns the description of MPI datatypes (MPI-4.1/5.0 chapter 5, "Datatypes"): the
//! predefined types of the standard ABI ([`predefined`](mod@predefined)), the derived-type constructors
//! (`MPI_Type_contiguous`, `_vector`, `_create_hvector`, `_indexed`, `_create_hindexed`,
//! `_create_indexed_block`, `_create_hindexed_block`, `_create_struct`, `_create_resized`,
//! `_dup`: [`typemap`]), the queries on them (size, bounds, extent, true extent, names,
//! `MPI_Get_count` / `MPI_Get_elements`), and packing/unpacking non-contiguous buffers
//! ([`pack`](mod@pack): `MPI_Pack`, `MPI_Unpack`, `MPI_Pack_size`, chunked packing for the
//! communication layer).
//!
//! It must not touch anything else: no communication, no handle table (a [`Datatype`] is a
//! plain `Arc`-shared value; mapping `MPI_Datatype` handles to it, reference counts,
//! attributes and `MPI_Type_commit` belong to the C ABI glue), no C ABI (no `extern "C"`,
//! no MPI error codes: errors are [`DtypeError`]), no I/O. Everything here is pure Rust;
//! the only `unsafe` is reading and writing the user's buffers in [`pack`](mod@pack).
//!
//! ## Representation
//!
//! A [`Datatype`] stores the type map of one element flattened to a list of contiguous
//! byte blocks `(displacement, length)` in **type-map order** (the order in which the data
//! is packed; not sorted by displacement, a negative stride gives decreasing
//! displacements), adjacent blocks merged, plus the bounds the standard defines (§5.1.6):
//! `lb`, `ub`, `extent`, `true_lb`, `true_extent`, and `size` (bytes of data). The type map
//! of `count` elements is that list repeated at multiples of the extent. The constructor
//! arguments are kept ([`Combiner`]) for `MPI_Type_get_envelope` / `_get_contents` and for
//! counting basic elements of partially received elements.

pub mod pack;
pub mod predefined;
pub mod typemap;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, RwLock};

pub use pack::{
    for_each_segment, pack, pack_at, pack_range, pack_size, unpack, unpack_at, unpack_range,
};
pub use predefined::{name_of, predefined, Basic};
pub use typemap::{
    contiguous, create_struct, dup, hindexed, hindexed_block, hvector, indexed, indexed_block,
    resized, vector,
};

/// Longest datatype name in bytes (`MPI_MAX_OBJECT_NAME` - 1 = 127; the ABI's
/// `MPI_MAX_OBJECT_NAME` is 128, counting the terminating NUL).
pub const MAX_NAME_LEN: usize = 127;

/// Most blocks the flattened type map of one element of a derived type may have
/// (16 Mi blocks, 256 MiB of description). A constructor whose result would exceed it
/// fails with [`DtypeError::TooComplex`] instead of exhausting memory.
pub const MAX_BLOCKS: usize = 1 << 24;

/// Errors of the datatype constructors and of the position-based pack/unpack.
///
/// The C ABI glue maps them to MPI error classes: `NegativeCount` → `MPI_ERR_COUNT` (or
/// `MPI_ERR_ARG` for block lengths), `LengthMismatch` → `MPI_ERR_ARG`, `Overflow` and
/// `TooComplex` → `MPI_ERR_TYPE` (or `MPI_ERR_INTERN`), `Truncated` → `MPI_ERR_TRUNCATE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtypeError {
    /// A count or block length is negative; `what` names the argument.
    NegativeCount {
        /// Which argument (`"count"`, `"blocklength"`, ...).
        what: &'static str,
        /// The value given.
        value: i64,
    },
    /// Argument arrays that must have the same length do not.
    LengthMismatch,
    /// A size, displacement or bound does not fit in `isize` / `usize`.
    Overflow,
    /// The flattened type map would have more than [`MAX_BLOCKS`] blocks.
    TooComplex,
    /// The buffer given to [`pack_at`] / [`unpack_at`] is too small.
    Truncated {
        /// Bytes needed from the position on.
        needed: usize,
        /// Bytes available from the position on.
        available: usize,
    },
}

impl fmt::Display for DtypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtypeError::NegativeCount { what, value } => {
                write!(f, "negative {what} ({value})")
            }
            DtypeError::LengthMismatch => write!(f, "argument arrays of different lengths"),
            DtypeError::Overflow => write!(f, "datatype size or displacement overflows"),
            DtypeError::TooComplex => {
                write!(f, "datatype has more than {MAX_BLOCKS} contiguous blocks")
            }
            DtypeError::Truncated { needed, available } => write!(
                f,
                "buffer too small: {needed} bytes needed, {available} available"
            ),
        }
    }
}

impl std::error::Error for DtypeError {}

/// One contiguous run of data bytes in the type map of one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Displacement in bytes from the buffer address of the element.
    pub disp: isize,
    /// Length in bytes (never 0).
    pub len: usize,
}

/// How a datatype was constructed: the arguments of its constructor, as
/// `MPI_Type_get_envelope` / `MPI_Type_get_contents` report them (MPI-4.1 §5.1.13).
#[derive(Debug)]
pub enum Combiner {
    /// A predefined type (`MPI_COMBINER_NAMED`), with its basic kind.
    Named(Basic),
    /// `MPI_Type_dup(old)`.
    Dup(Arc<Datatype>),
    /// `MPI_Type_contiguous(count, old)`.
    Contiguous {
        /// Number of elements.
        count: i64,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_vector(count, blocklength, stride, old)`, stride in extents of `old`.
    Vector {
        /// Number of blocks.
        count: i64,
        /// Elements per block.
        blocklength: i64,
        /// Distance between block starts, in extents of `old`.
        stride: i64,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_create_hvector(count, blocklength, stride, old)`, stride in bytes.
    Hvector {
        /// Number of blocks.
        count: i64,
        /// Elements per block.
        blocklength: i64,
        /// Distance between block starts, in bytes.
        stride: isize,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_indexed`: displacements in extents of `old`.
    Indexed {
        /// Elements per block.
        blocklengths: Vec<i64>,
        /// Block displacements, in extents of `old`.
        displacements: Vec<i64>,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_create_hindexed`: displacements in bytes.
    Hindexed {
        /// Elements per block.
        blocklengths: Vec<i64>,
        /// Block displacements, in bytes.
        displacements: Vec<isize>,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_create_indexed_block`: displacements in extents of `old`.
    IndexedBlock {
        /// Elements per block.
        blocklength: i64,
        /// Block displacements, in extents of `old`.
        displacements: Vec<i64>,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_create_hindexed_block`: displacements in bytes.
    HindexedBlock {
        /// Elements per block.
        blocklength: i64,
        /// Block displacements, in bytes.
        displacements: Vec<isize>,
        /// Old type.
        old: Arc<Datatype>,
    },
    /// `MPI_Type_create_struct`.
    Struct {
        /// Elements per block.
        blocklengths: Vec<i64>,
        /// Block displacements, in bytes.
        displacements: Vec<isize>,
        /// Type of each block.
        types: Vec<Arc<Datatype>>,
    },
    /// `MPI_Type_create_resized(old, lb, extent)`.
    Resized {
        /// New lower bound, bytes.
        lb: isize,
        /// New extent, bytes.
        extent: isize,
        /// Old type.
        old: Arc<Datatype>,
    },
}

impl Combiner {
    /// The `MPI_COMBINER_*` value of the standard ABI (`MPI_COMBINER_NAMED` = 101, ...,
    /// `MPI_COMBINER_RESIZED` = 116).
    pub fn code(&self) -> i32 {
        match self {
            Combiner::Named(_) => 101,
            Combiner::Dup(_) => 102,
            Combiner::Contiguous { .. } => 103,
            Combiner::Vector { .. } => 104,
            Combiner::Hvector { .. } => 105,
            Combiner::Indexed { .. } => 106,
            Combiner::Hindexed { .. } => 107,
            Combiner::IndexedBlock { .. } => 108,
            Combiner::HindexedBlock { .. } => 109,
            Combiner::Struct { .. } => 110,
            Combiner::Resized { .. } => 116,
        }
    }
}

/// An MPI datatype: an immutable description of a type map (MPI-4.1 §5.1), shared by `Arc`.
///
/// Only the name can change after construction (`MPI_Type_set_name`).
#[derive(Debug)]
pub struct Datatype {
    /// Type map of one element: contiguous blocks in type-map order, adjacent ones merged.
    pub(crate) blocks: Vec<Block>,
    /// `prefix[i]`: offset of `blocks[i]` in the packed stream of one element.
    pub(crate) prefix: Vec<usize>,
    /// Bytes of data in one element.
    pub(crate) size: usize,
    pub(crate) lb: isize,
    pub(crate) ub: isize,
    pub(crate) true_lb: isize,
    pub(crate) true_ub: isize,
    /// Alignment in bytes (max of the basic types' alignments), for the struct epsilon.
    pub(crate) align: usize,
    /// Basic elements in one element.
    pub(crate) n_elements: u64,
    /// The basic kind of every basic element, if they all have the same.
    pub(crate) kind: Option<Basic>,
    /// The ABI handle value, for predefined types.
    pub(crate) handle: Option<usize>,
    pub(crate) combiner: Combiner,
    name: RwLock<String>,
}

impl Datatype {
    /// A predefined type: one element of `basic` at displacement 0 (pair kinds: their two
    /// members), lb 0, extent `basic.extent()`.
    pub(crate) fn new_predefined(handle: usize, name: &str, basic: Basic) -> Datatype {
        let mut blocks: Vec<Block> = Vec::new();
        match basic.pair_members() {
            Some(members) => {
                for (d, m) in members {
                    // Cannot fail: two small blocks.
                    let _ = typemap::push_block(&mut blocks, d as isize, m.size());
                }
            }
            None => blocks.push(Block {
                disp: 0,
                len: basic.size(),
            }),
        }
        let true_ub = blocks.iter().map(|b| b.disp + b.len as isize).max();
        Datatype {
            prefix: typemap::prefix_of(&blocks),
            blocks,
            size: basic.size(),
            lb: 0,
            ub: basic.extent() as isize,
            true_lb: 0,
            true_ub: true_ub.unwrap_or(0),
            align: basic.align(),
            n_elements: basic.elements(),
            kind: Some(basic),
            handle: Some(handle),
            combiner: Combiner::Named(basic),
            name: RwLock::new(name.to_string()),
        }
    }

    /// Assembles a derived type (the name is empty, as the standard requires).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_derived(
        blocks: Vec<Block>,
        size: usize,
        lb: isize,
        ub: isize,
        true_lb: isize,
        true_ub: isize,
        align: usize,
        n_elements: u64,
        kind: Option<Basic>,
        combiner: Combiner,
    ) -> Datatype {
        Datatype {
            prefix: typemap::prefix_of(&blocks),
            blocks,
            size,
            lb,
            ub,
            true_lb,
            true_ub,
            align,
            n_elements,
            kind,
            handle: None,
            combiner,
            name: RwLock::new(String::new()),
        }
    }

    /// Bytes of data in one element (`MPI_Type_size`, §5.1.5): the sum of the sizes of the
    /// entries of the type map, padding and holes excluded.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Lower bound in bytes (`MPI_Type_get_extent`, §5.1.6).
    pub fn lb(&self) -> isize {
        self.lb
    }

    /// Upper bound in bytes (`lb + extent`).
    pub fn ub(&self) -> isize {
        self.ub
    }

    /// Extent in bytes (`ub - lb`): the distance between consecutive elements of a
    /// `count > 1` buffer. May be negative or zero for resized types.
    pub fn extent(&self) -> isize {
        self.ub - self.lb
    }

    /// True lower bound in bytes (`MPI_Type_get_true_extent`, §5.1.8): the lowest
    /// displacement of a data byte; 0 for a type without data.
    pub fn true_lb(&self) -> isize {
        self.true_lb
    }

    /// True extent in bytes: from the lowest data byte to one past the highest, ignoring
    /// resizing; 0 for a type without data.
    pub fn true_extent(&self) -> isize {
        self.true_ub - self.true_lb
    }

    /// Alignment in bytes: the largest alignment of the basic types in the type map (the
    /// `k` of the struct epsilon rule, §5.1.6); 1 for a type without data.
    pub fn align(&self) -> usize {
        self.align
    }

    /// The flattened type map of one element: contiguous byte blocks in type-map (packing)
    /// order, adjacent blocks merged, displacements in bytes relative to the buffer address.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Number of basic elements in one element (`MPI_Get_elements` of one element; the
    /// pair types count 2).
    pub fn num_elements(&self) -> u64 {
        self.n_elements
    }

    /// The basic kind every basic element has, if they all have the same one (what a
    /// reduction dispatches on; a pair type is its own kind), or `None` if the type mixes
    /// kinds or has no data.
    pub fn basic(&self) -> Option<Basic> {
        self.kind
    }

    /// Whether this is a predefined type.
    pub fn is_predefined(&self) -> bool {
        self.handle.is_some()
    }

    /// The ABI handle value of a predefined type, `None` for a derived type.
    pub fn handle_value(&self) -> Option<usize> {
        self.handle
    }

    /// The constructor and its arguments (`MPI_Type_get_envelope` / `_get_contents`).
    pub fn combiner(&self) -> &Combiner {
        &self.combiner
    }

    /// Whether `count` consecutive elements of this type occupy one contiguous run of
    /// bytes with no hole (then pack and unpack are a single copy): the type map is a
    /// single block and its length equals the extent, or it has no data.
    pub fn is_contiguous(&self) -> bool {
        match self.blocks.as_slice() {
            [] => true,
            [b] => b.len as isize == self.extent(),
            _ => false,
        }
    }

    /// The name (`MPI_Type_get_name`, chapter 7 "Naming Objects"): the canonical name for a
    /// predefined type, empty for a derived type, unless changed by
    /// [`set_name`](Self::set_name).
    pub fn name(&self) -> String {
        match self.name.read() {
            Ok(n) => n.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sets the name (`MPI_Type_set_name`). A name longer than [`MAX_NAME_LEN`] bytes is
    /// truncated to it (at a character boundary), as the standard allows.
    pub fn set_name(&self, name: &str) {
        let mut end = name.len().min(MAX_NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut guard = match self.name.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = name[..end].to_string();
    }

    /// `MPI_Get_count` (§3.2.5): the number of whole elements in `bytes` received bytes,
    /// or `None` (`MPI_UNDEFINED`) if `bytes` is not a multiple of the size. A type of size
    /// 0 gives `Some(0)`.
    pub fn get_count(&self, bytes: usize) -> Option<u64> {
        if self.size == 0 {
            return Some(0);
        }
        if bytes % self.size != 0 {
            return None;
        }
        Some((bytes / self.size) as u64)
    }

    /// `MPI_Get_elements` (§5.1.12): the number of basic elements in `bytes` received
    /// bytes, counting the whole basic elements of a partially received last element; `None`
    /// (`MPI_UNDEFINED`) if `bytes` ends inside a basic element.
    pub fn get_elements(&self, bytes: usize) -> Option<u64> {
        if self.size == 0 {
            return if bytes == 0 { Some(0) } else { None };
        }
        let full = (bytes / self.size) as u64;
        let rem = bytes % self.size;
        full.checked_mul(self.n_elements)?
            .checked_add(self.partial_elements(rem)?)
    }

    /// Basic elements in the first `bytes` (< size) packed bytes of one element, walking the
    /// constructor tree in type-map order.
    fn partial_elements(&self, bytes: usize) -> Option<u64> {
        if bytes == 0 {
            return Some(0);
        }
        match &self.combiner {
            Combiner::Named(b) => match b.pair_members() {
                Some([(_, m0), (_, m1)]) => {
                    if bytes == m0.size() {
                        Some(1)
                    } else if bytes == m0.size() + m1.size() {
                        Some(2)
                    } else {
                        None
                    }
                }
                None => None,
            },
            Combiner::Dup(old) | Combiner::Resized { old, .. } => old.partial_elements(bytes),
            Combiner::Contiguous { old, .. }
            | Combiner::Vector { old, .. }
            | Combiner::Hvector { old, .. }
            | Combiner::Indexed { old, .. }
            | Combiner::Hindexed { old, .. }
            | Combiner::IndexedBlock { old, .. }
            | Combiner::HindexedBlock { old, .. } => old.seq_elements(bytes),
            Combiner::Struct {
                blocklengths,
                types,
                ..
            } => {
                let mut left = bytes;
                let mut elems = 0u64;
                for (&n, t) in blocklengths.iter().zip(types) {
                    let part = (n as usize).checked_mul(t.size)?;
                    if left >= part {
                        left -= part;
                        elems = elems.checked_add((n as u64).checked_mul(t.n_elements)?)?;
                    } else {
                        return elems.checked_add(t.seq_elements(left)?);
                    }
                }
                if left == 0 {
                    Some(elems)
                } else {
                    None
                }
            }
        }
    }

    /// Basic elements in the first `bytes` packed bytes of consecutive elements of `self`.
    fn seq_elements(&self, bytes: usize) -> Option<u64> {
        if self.size == 0 {
            return if bytes == 0 { Some(0) } else { None };
        }
        let full = (bytes / self.size) as u64;
        full.checked_mul(self.n_elements)?
            .checked_add(self.partial_elements(bytes % self.size)?)
    }
}
