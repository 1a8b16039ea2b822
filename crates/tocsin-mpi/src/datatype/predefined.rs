//! The predefined datatypes of the MPI standard ABI (MPI 5.0, chapter "Application Binary
//! Interface"): their handle values (from the MPI Forum's reference `mpi_abi.h`), names,
//! sizes and alignments on x86-64 Linux (LP64), and the basic kind every element has, which
//! the reduction operations dispatch on (MPI-4.1 §6.9.2, "Predefined Reduction Operations").

use std::sync::{Arc, OnceLock};

use super::Datatype;

/// The basic kind of a predefined datatype: what a reduction operation computes on.
///
/// Sizes and alignments are those of the C (or gfortran) type on x86-64 Linux, LP64.
/// The pair kinds are the types of `MPI_MINLOC` / `MPI_MAXLOC` (MPI-4.1 §6.9.4); their
/// layout is the C struct `{ value; int index; }` (Fortran: two values of the same type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basic {
    /// Signed 8-bit integer (`int8_t`, `signed char`, and `char`: MPI_CHAR is reduced as a
    /// signed 8-bit integer, as MPICH does; `INTEGER*1`).
    I8,
    /// Signed 16-bit integer (`short`, `int16_t`, `INTEGER*2`).
    I16,
    /// Signed 32-bit integer (`int`, `int32_t`, `INTEGER`, `INTEGER*4`).
    I32,
    /// Signed 64-bit integer (`long`, `long long`, `int64_t`, `MPI_Aint`, `MPI_Offset`,
    /// `MPI_Count`, `INTEGER*8`).
    I64,
    /// Signed 128-bit integer (`INTEGER*16`), alignment 16.
    I128,
    /// Unsigned 8-bit integer (`unsigned char`, `uint8_t`).
    U8,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer (`unsigned long`, `unsigned long long`, `uint64_t`).
    U64,
    /// IEEE binary16 (`REAL*2`).
    F16,
    /// IEEE binary32 (`float`, `REAL`, `REAL*4`).
    F32,
    /// IEEE binary64 (`double`, `DOUBLE PRECISION`, `REAL*8`).
    F64,
    /// x87 80-bit extended `long double`, stored in 16 bytes (10 data bytes, 6 padding),
    /// alignment 16.
    LongDouble,
    /// IEEE binary128 (`REAL*16`, gfortran's `__float128`), alignment 16.
    F128,
    /// C `_Bool` / C++ `bool`, 1 byte (0 or 1).
    Bool,
    /// Fortran `LOGICAL*1`.
    Logical1,
    /// Fortran `LOGICAL*2`.
    Logical2,
    /// Fortran `LOGICAL` / `LOGICAL*4`.
    Logical4,
    /// Fortran `LOGICAL*8`.
    Logical8,
    /// Fortran `LOGICAL*16`, alignment 16.
    Logical16,
    /// Complex of two binary16 (`COMPLEX*4`), 4 bytes.
    ComplexF16,
    /// Complex of two `float` (`float _Complex`, `COMPLEX`, `COMPLEX*8`), 8 bytes.
    ComplexF32,
    /// Complex of two `double` (`double _Complex`, `DOUBLE COMPLEX`, `COMPLEX*16`), 16 bytes.
    ComplexF64,
    /// Complex of two `long double`, 32 bytes, alignment 16.
    ComplexLongDouble,
    /// Complex of two binary128 (`COMPLEX*32`), 32 bytes, alignment 16.
    ComplexF128,
    /// `wchar_t` (4 bytes, signed on Linux); no arithmetic in the standard.
    Wchar,
    /// Fortran `CHARACTER` (1 byte); no arithmetic.
    Character,
    /// `MPI_BYTE`: uninterpreted byte; no arithmetic (only `MPI_BAND`/`BOR`/`BXOR`, §6.9.2).
    Byte,
    /// `MPI_PACKED`: packed data; no arithmetic.
    Packed,
    /// `MPI_FLOAT_INT`: `struct { float; int; }`, size 8, extent 8.
    FloatInt,
    /// `MPI_DOUBLE_INT`: `struct { double; int; }`, 12 data bytes, extent 16.
    DoubleInt,
    /// `MPI_LONG_INT`: `struct { long; int; }`, 12 data bytes, extent 16.
    LongInt,
    /// `MPI_2INT`: `struct { int; int; }`, size 8.
    TwoInt,
    /// `MPI_SHORT_INT`: `struct { short; int; }`: short at 0, int at 4; 6 data bytes, extent 8.
    ShortInt,
    /// `MPI_LONG_DOUBLE_INT`: `struct { long double; int; }`: 20 data bytes, extent 32.
    LongDoubleInt,
    /// `MPI_2REAL`: two Fortran `REAL`, size 8.
    TwoReal,
    /// `MPI_2DOUBLE_PRECISION`: two Fortran `DOUBLE PRECISION`, size 16.
    TwoDoublePrecision,
    /// `MPI_2INTEGER`: two Fortran `INTEGER`, size 8.
    TwoInteger,
}

impl Basic {
    /// Bytes of data of one element (for the pair kinds: both members, without the padding
    /// between and after them; `LongDouble` counts its 16 storage bytes as `sizeof` does).
    pub const fn size(self) -> usize {
        use Basic::*;
        match self {
            I8 | U8 | Bool | Logical1 | Character | Byte | Packed => 1,
            I16 | U16 | F16 | Logical2 => 2,
            I32 | U32 | F32 | Logical4 | ComplexF16 | Wchar => 4,
            I64 | U64 | F64 | Logical8 | ComplexF32 => 8,
            I128 | F128 | LongDouble | Logical16 | ComplexF64 => 16,
            ComplexLongDouble | ComplexF128 => 32,
            FloatInt | TwoInt | TwoReal | TwoInteger => 8,
            DoubleInt | LongInt => 12,
            ShortInt => 6,
            LongDoubleInt => 20,
            TwoDoublePrecision => 16,
        }
    }

    /// The extent of one element in bytes (`sizeof` of the C type; differs from
    /// [`size`](Self::size) only for the pair kinds with padding).
    pub const fn extent(self) -> usize {
        use Basic::*;
        match self {
            DoubleInt | LongInt => 16,
            ShortInt => 8,
            LongDoubleInt => 32,
            _ => self.size(),
        }
    }

    /// Alignment in bytes (of the C type on x86-64; complex: that of its real part).
    pub const fn align(self) -> usize {
        use Basic::*;
        match self {
            ComplexF16 => 2,
            ComplexF32 | FloatInt | TwoInt | ShortInt | TwoReal | TwoInteger => 4,
            ComplexF64 | DoubleInt | LongInt | TwoDoublePrecision => 8,
            ComplexLongDouble | ComplexF128 | LongDoubleInt => 16,
            _ => self.size(),
        }
    }

    /// The members of a pair kind as `(displacement in bytes, member kind)`, or `None` for a
    /// kind that is not a pair. `MPI_Get_elements` counts each member as one basic element.
    pub const fn pair_members(self) -> Option<[(usize, Basic); 2]> {
        use Basic::*;
        Some(match self {
            FloatInt => [(0, F32), (4, I32)],
            DoubleInt => [(0, F64), (8, I32)],
            LongInt => [(0, I64), (8, I32)],
            TwoInt => [(0, I32), (4, I32)],
            ShortInt => [(0, I16), (4, I32)],
            LongDoubleInt => [(0, LongDouble), (16, I32)],
            TwoReal => [(0, F32), (4, F32)],
            TwoDoublePrecision => [(0, F64), (8, F64)],
            TwoInteger => [(0, I32), (4, I32)],
            _ => return None,
        })
    }

    /// Basic elements per element: 2 for the pair kinds, 1 otherwise.
    pub const fn elements(self) -> u64 {
        if self.pair_members().is_some() {
            2
        } else {
            1
        }
    }
}

/// One row of the predefined table: ABI handle value, canonical name, basic kind.
type Row = (usize, &'static str, Basic);

/// Every predefined datatype of the MPI 5.0 standard ABI (`mpi_abi.h` of MPICH 5.0.2, the
/// MPI Forum reference header), in handle order. Aliases (`MPI_LONG_LONG_INT`,
/// `MPI_C_COMPLEX`) share the handle of the type they alias and are not listed.
/// `MPI_DATATYPE_NULL` (0x200) is not a type.
pub const PREDEFINED: &[Row] = &[
    (0x201, "MPI_AINT", Basic::I64),
    (0x202, "MPI_COUNT", Basic::I64),
    (0x203, "MPI_OFFSET", Basic::I64),
    (0x207, "MPI_PACKED", Basic::Packed),
    (0x208, "MPI_SHORT", Basic::I16),
    (0x209, "MPI_INT", Basic::I32),
    (0x20a, "MPI_LONG", Basic::I64),
    (0x20b, "MPI_LONG_LONG", Basic::I64),
    (0x20c, "MPI_UNSIGNED_SHORT", Basic::U16),
    (0x20d, "MPI_UNSIGNED", Basic::U32),
    (0x20e, "MPI_UNSIGNED_LONG", Basic::U64),
    (0x20f, "MPI_UNSIGNED_LONG_LONG", Basic::U64),
    (0x210, "MPI_FLOAT", Basic::F32),
    (0x212, "MPI_C_FLOAT_COMPLEX", Basic::ComplexF32),
    (0x213, "MPI_CXX_FLOAT_COMPLEX", Basic::ComplexF32),
    (0x214, "MPI_DOUBLE", Basic::F64),
    (0x216, "MPI_C_DOUBLE_COMPLEX", Basic::ComplexF64),
    (0x217, "MPI_CXX_DOUBLE_COMPLEX", Basic::ComplexF64),
    (0x218, "MPI_LOGICAL", Basic::Logical4),
    (0x219, "MPI_INTEGER", Basic::I32),
    (0x21a, "MPI_REAL", Basic::F32),
    (0x21b, "MPI_COMPLEX", Basic::ComplexF32),
    (0x21c, "MPI_DOUBLE_PRECISION", Basic::F64),
    (0x21d, "MPI_DOUBLE_COMPLEX", Basic::ComplexF64),
    (0x21e, "MPI_CHARACTER", Basic::Character),
    (0x220, "MPI_LONG_DOUBLE", Basic::LongDouble),
    (0x224, "MPI_C_LONG_DOUBLE_COMPLEX", Basic::ComplexLongDouble),
    (
        0x225,
        "MPI_CXX_LONG_DOUBLE_COMPLEX",
        Basic::ComplexLongDouble,
    ),
    (0x228, "MPI_FLOAT_INT", Basic::FloatInt),
    (0x229, "MPI_DOUBLE_INT", Basic::DoubleInt),
    (0x22a, "MPI_LONG_INT", Basic::LongInt),
    (0x22b, "MPI_2INT", Basic::TwoInt),
    (0x22c, "MPI_SHORT_INT", Basic::ShortInt),
    (0x22d, "MPI_LONG_DOUBLE_INT", Basic::LongDoubleInt),
    (0x230, "MPI_2REAL", Basic::TwoReal),
    (0x231, "MPI_2DOUBLE_PRECISION", Basic::TwoDoublePrecision),
    (0x232, "MPI_2INTEGER", Basic::TwoInteger),
    (0x238, "MPI_C_BOOL", Basic::Bool),
    (0x239, "MPI_CXX_BOOL", Basic::Bool),
    (0x23c, "MPI_WCHAR", Basic::Wchar),
    (0x240, "MPI_INT8_T", Basic::I8),
    (0x241, "MPI_UINT8_T", Basic::U8),
    (0x243, "MPI_CHAR", Basic::I8),
    (0x244, "MPI_SIGNED_CHAR", Basic::I8),
    (0x245, "MPI_UNSIGNED_CHAR", Basic::U8),
    (0x247, "MPI_BYTE", Basic::Byte),
    (0x248, "MPI_INT16_T", Basic::I16),
    (0x249, "MPI_UINT16_T", Basic::U16),
    (0x250, "MPI_INT32_T", Basic::I32),
    (0x251, "MPI_UINT32_T", Basic::U32),
    (0x258, "MPI_INT64_T", Basic::I64),
    (0x259, "MPI_UINT64_T", Basic::U64),
    (0x2c0, "MPI_LOGICAL1", Basic::Logical1),
    (0x2c1, "MPI_INTEGER1", Basic::I8),
    (0x2c8, "MPI_LOGICAL2", Basic::Logical2),
    (0x2c9, "MPI_INTEGER2", Basic::I16),
    (0x2ca, "MPI_REAL2", Basic::F16),
    (0x2d0, "MPI_LOGICAL4", Basic::Logical4),
    (0x2d1, "MPI_INTEGER4", Basic::I32),
    (0x2d2, "MPI_REAL4", Basic::F32),
    (0x2d3, "MPI_COMPLEX4", Basic::ComplexF16),
    (0x2d8, "MPI_LOGICAL8", Basic::Logical8),
    (0x2d9, "MPI_INTEGER8", Basic::I64),
    (0x2da, "MPI_REAL8", Basic::F64),
    (0x2db, "MPI_COMPLEX8", Basic::ComplexF32),
    (0x2e0, "MPI_LOGICAL16", Basic::Logical16),
    (0x2e1, "MPI_INTEGER16", Basic::I128),
    (0x2e2, "MPI_REAL16", Basic::F128),
    (0x2e3, "MPI_COMPLEX16", Basic::ComplexF64),
    (0x2eb, "MPI_COMPLEX32", Basic::ComplexF128),
];

/// ABI handle values of the predefined datatypes, for the C glue and the tests
/// (`mpi_abi.h`: `#define MPI_xxx ((MPI_Datatype)0x...)`).
#[allow(missing_docs)]
pub mod handle {
    pub const MPI_DATATYPE_NULL: usize = 0x200;
    pub const MPI_AINT: usize = 0x201;
    pub const MPI_COUNT: usize = 0x202;
    pub const MPI_OFFSET: usize = 0x203;
    pub const MPI_PACKED: usize = 0x207;
    pub const MPI_SHORT: usize = 0x208;
    pub const MPI_INT: usize = 0x209;
    pub const MPI_LONG: usize = 0x20a;
    pub const MPI_LONG_LONG: usize = 0x20b;
    pub const MPI_LONG_LONG_INT: usize = MPI_LONG_LONG;
    pub const MPI_UNSIGNED_SHORT: usize = 0x20c;
    pub const MPI_UNSIGNED: usize = 0x20d;
    pub const MPI_UNSIGNED_LONG: usize = 0x20e;
    pub const MPI_UNSIGNED_LONG_LONG: usize = 0x20f;
    pub const MPI_FLOAT: usize = 0x210;
    pub const MPI_C_FLOAT_COMPLEX: usize = 0x212;
    pub const MPI_C_COMPLEX: usize = MPI_C_FLOAT_COMPLEX;
    pub const MPI_CXX_FLOAT_COMPLEX: usize = 0x213;
    pub const MPI_DOUBLE: usize = 0x214;
    pub const MPI_C_DOUBLE_COMPLEX: usize = 0x216;
    pub const MPI_CXX_DOUBLE_COMPLEX: usize = 0x217;
    pub const MPI_LOGICAL: usize = 0x218;
    pub const MPI_INTEGER: usize = 0x219;
    pub const MPI_REAL: usize = 0x21a;
    pub const MPI_COMPLEX: usize = 0x21b;
    pub const MPI_DOUBLE_PRECISION: usize = 0x21c;
    pub const MPI_DOUBLE_COMPLEX: usize = 0x21d;
    pub const MPI_CHARACTER: usize = 0x21e;
    pub const MPI_LONG_DOUBLE: usize = 0x220;
    pub const MPI_C_LONG_DOUBLE_COMPLEX: usize = 0x224;
    pub const MPI_CXX_LONG_DOUBLE_COMPLEX: usize = 0x225;
    pub const MPI_FLOAT_INT: usize = 0x228;
    pub const MPI_DOUBLE_INT: usize = 0x229;
    pub const MPI_LONG_INT: usize = 0x22a;
    pub const MPI_2INT: usize = 0x22b;
    pub const MPI_SHORT_INT: usize = 0x22c;
    pub const MPI_LONG_DOUBLE_INT: usize = 0x22d;
    pub const MPI_2REAL: usize = 0x230;
    pub const MPI_2DOUBLE_PRECISION: usize = 0x231;
    pub const MPI_2INTEGER: usize = 0x232;
    pub const MPI_C_BOOL: usize = 0x238;
    pub const MPI_CXX_BOOL: usize = 0x239;
    pub const MPI_WCHAR: usize = 0x23c;
    pub const MPI_INT8_T: usize = 0x240;
    pub const MPI_UINT8_T: usize = 0x241;
    pub const MPI_CHAR: usize = 0x243;
    pub const MPI_SIGNED_CHAR: usize = 0x244;
    pub const MPI_UNSIGNED_CHAR: usize = 0x245;
    pub const MPI_BYTE: usize = 0x247;
    pub const MPI_INT16_T: usize = 0x248;
    pub const MPI_UINT16_T: usize = 0x249;
    pub const MPI_INT32_T: usize = 0x250;
    pub const MPI_UINT32_T: usize = 0x251;
    pub const MPI_INT64_T: usize = 0x258;
    pub const MPI_UINT64_T: usize = 0x259;
    pub const MPI_LOGICAL1: usize = 0x2c0;
    pub const MPI_INTEGER1: usize = 0x2c1;
    pub const MPI_LOGICAL2: usize = 0x2c8;
    pub const MPI_INTEGER2: usize = 0x2c9;
    pub const MPI_REAL2: usize = 0x2ca;
    pub const MPI_LOGICAL4: usize = 0x2d0;
    pub const MPI_INTEGER4: usize = 0x2d1;
    pub const MPI_REAL4: usize = 0x2d2;
    pub const MPI_COMPLEX4: usize = 0x2d3;
    pub const MPI_LOGICAL8: usize = 0x2d8;
    pub const MPI_INTEGER8: usize = 0x2d9;
    pub const MPI_REAL8: usize = 0x2da;
    pub const MPI_COMPLEX8: usize = 0x2db;
    pub const MPI_LOGICAL16: usize = 0x2e0;
    pub const MPI_INTEGER16: usize = 0x2e1;
    pub const MPI_REAL16: usize = 0x2e2;
    pub const MPI_COMPLEX16: usize = 0x2e3;
    pub const MPI_COMPLEX32: usize = 0x2eb;
}

/// First handle value of the datatype range of the ABI (`MPI_DATATYPE_NULL`).
const RANGE_START: usize = 0x200;
/// Size of the range of predefined datatype handle values (0x200..0x300).
const RANGE_LEN: usize = 0x100;

/// The table of predefined datatypes, indexed by `handle - 0x200`; built once.
/// Bytes of one element of each predefined datatype whose type map is one contiguous block
/// (size = extent), 0 for the others (pair types with padding, non-types), indexed by
/// handle value − 0x200: the communication fast paths read it without touching the
/// [`predefined`] table.
static CONTIG_SIZE: [u16; RANGE_LEN] = {
    let mut t = [0u16; RANGE_LEN];
    let mut i = 0;
    while i < PREDEFINED.len() {
        let (h, _, b) = PREDEFINED[i];
        if b.size() == b.extent() && b.size() > 0 {
            t[h - RANGE_START] = b.size() as u16;
        }
        i += 1;
    }
    t
};

/// Bytes per element of `handle_value` if it is a predefined datatype laid out as one
/// contiguous block (no gap), else `None`. A table read: the fast path of communication.
#[inline]
pub fn contiguous_size(handle_value: usize) -> Option<usize> {
    let i = handle_value.checked_sub(RANGE_START)?;
    match CONTIG_SIZE.get(i) {
        Some(&n) if n > 0 => Some(n as usize),
        _ => None,
    }
}

fn table() -> &'static [Option<Arc<Datatype>>] {
    static TABLE: OnceLock<Vec<Option<Arc<Datatype>>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut v: Vec<Option<Arc<Datatype>>> = vec![None; RANGE_LEN];
        for &(h, name, basic) in PREDEFINED {
            v[h - RANGE_START] = Some(Arc::new(Datatype::new_predefined(h, name, basic)));
        }
        v
    })
}

/// The predefined datatype whose ABI handle value is `handle_value`, or `None` if that
/// value is not a predefined datatype (`MPI_DATATYPE_NULL` is not one).
///
/// The returned `Arc` is `'static`: clone it to use it as the old type of a constructor.
pub fn predefined(handle_value: usize) -> Option<&'static Arc<Datatype>> {
    let i = handle_value.checked_sub(RANGE_START)?;
    table().get(i)?.as_ref()
}

/// The canonical MPI name of the predefined datatype `handle_value` (`"MPI_CHAR"`, ...), as
/// `MPI_Type_get_name` returns it before any `MPI_Type_set_name`; `None` if the value is not
/// a predefined datatype.
pub fn name_of(handle_value: usize) -> Option<&'static str> {
    PREDEFINED.iter().find(|r| r.0 == handle_value).map(|r| r.1)
}

#[cfg(test)]
mod contig_tests {
    use super::*;

    #[test]
    fn contiguous_sizes_agree_with_the_table() {
        for &(h, name, _) in PREDEFINED {
            let d = predefined(h).expect("predefined");
            let want = (d.is_contiguous() && d.size() > 0 && d.size() as isize == d.extent())
                .then(|| d.size());
            assert_eq!(contiguous_size(h), want, "{name}");
        }
        assert_eq!(contiguous_size(0x200), None, "MPI_DATATYPE_NULL");
    }
}
