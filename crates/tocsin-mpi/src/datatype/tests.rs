//! Tests of the datatype engine: predefined table, the standard's own examples (MPI-4.1
//! §5.1), errors, counts, pack/unpack; and a property test comparing random nested types
//! against a naive expansion of the standard's type-map definitions.

use std::sync::Arc;

use proptest::prelude::*;

use super::predefined::handle::*;
use super::predefined::PREDEFINED;
use super::*;

fn p(h: usize) -> Arc<Datatype> {
    predefined(h).expect("predefined").clone()
}

fn blocks_of(dt: &Datatype) -> Vec<(isize, usize)> {
    dt.blocks().iter().map(|b| (b.disp, b.len)).collect()
}

/// `{(double, 0), (char, 8)}`, the old type of the standard's examples (extent 16).
fn double_char() -> Arc<Datatype> {
    create_struct(&[1, 1], &[0, 8], &[p(MPI_DOUBLE), p(MPI_CHAR)]).unwrap()
}

#[test]
fn predefined_names_sizes_handles() {
    assert_eq!(name_of(MPI_CHAR), Some("MPI_CHAR"));
    assert_eq!(name_of(MPI_DOUBLE_PRECISION), Some("MPI_DOUBLE_PRECISION"));
    assert_eq!(name_of(MPI_LONG_LONG_INT), Some("MPI_LONG_LONG"));
    assert_eq!(name_of(MPI_DATATYPE_NULL), None);
    assert!(predefined(MPI_DATATYPE_NULL).is_none());
    assert!(predefined(0).is_none());
    assert!(predefined(usize::MAX).is_none());
    assert!(predefined(0x2ff).is_none());
    assert_eq!(PREDEFINED.len(), 70);
    let mut handles: Vec<usize> = PREDEFINED.iter().map(|r| r.0).collect();
    handles.dedup();
    assert_eq!(handles.len(), PREDEFINED.len(), "sorted and unique");
    for &(h, name, basic) in PREDEFINED {
        let dt = predefined(h).unwrap();
        assert_eq!(dt.name(), name);
        assert_eq!(dt.handle_value(), Some(h));
        assert!(dt.is_predefined());
        assert_eq!(dt.size(), basic.size());
        assert_eq!(dt.extent(), basic.extent() as isize);
        assert_eq!(dt.lb(), 0);
        assert_eq!(dt.true_lb(), 0);
        assert_eq!(dt.basic(), Some(basic));
        assert_eq!(dt.combiner().code(), 101);
        assert!(name.starts_with("MPI_"));
    }
    let sizes = [
        (MPI_CHAR, 1),
        (MPI_SHORT, 2),
        (MPI_INT, 4),
        (MPI_LONG, 8),
        (MPI_LONG_LONG, 8),
        (MPI_FLOAT, 4),
        (MPI_DOUBLE, 8),
        (MPI_LONG_DOUBLE, 16),
        (MPI_WCHAR, 4),
        (MPI_C_BOOL, 1),
        (MPI_AINT, 8),
        (MPI_OFFSET, 8),
        (MPI_COUNT, 8),
        (MPI_C_LONG_DOUBLE_COMPLEX, 32),
        (MPI_COMPLEX32, 32),
        (MPI_COMPLEX4, 4),
        (MPI_INTEGER16, 16),
    ];
    for (h, s) in sizes {
        assert_eq!(p(h).size(), s, "{}", name_of(h).unwrap());
    }
    assert_eq!(p(MPI_LONG_DOUBLE).align(), 16);
    assert_eq!(p(MPI_CHAR).basic(), Some(Basic::I8));
    assert_eq!(p(MPI_UNSIGNED_CHAR).basic(), Some(Basic::U8));
}

#[test]
fn pair_types() {
    let di = p(MPI_DOUBLE_INT);
    assert_eq!((di.size(), di.extent(), di.align()), (12, 16, 8));
    assert_eq!(blocks_of(&di), [(0, 12)]);
    let si = p(MPI_SHORT_INT);
    assert_eq!((si.size(), si.extent()), (6, 8));
    assert_eq!(blocks_of(&si), [(0, 2), (4, 4)]);
    assert_eq!(si.true_extent(), 8);
    let ldi = p(MPI_LONG_DOUBLE_INT);
    assert_eq!((ldi.size(), ldi.extent(), ldi.align()), (20, 32, 16));
    assert_eq!(p(MPI_2INT).num_elements(), 2);
    assert_eq!(p(MPI_2INT).get_elements(4), Some(1));
    assert_eq!(p(MPI_SHORT_INT).get_elements(2), Some(1));
    assert_eq!(p(MPI_SHORT_INT).get_elements(3), None);
    let v = contiguous(2, &p(MPI_DOUBLE_INT)).unwrap();
    assert_eq!(v.basic(), Some(Basic::DoubleInt));
    assert_eq!(v.get_elements(12 + 8), Some(3));
    assert_eq!(blocks_of(&v), [(0, 12), (16, 12)]);
}

/// MPI-4.1 Example 5.5 / §5.1.2: contiguous(3) of {(double,0),(char,8)}.
#[test]
fn standard_contiguous_example() {
    let old = double_char();
    assert_eq!((old.size(), old.lb(), old.extent()), (9, 0, 16));
    let t = contiguous(3, &old).unwrap();
    assert_eq!(blocks_of(&t), [(0, 9), (16, 9), (32, 9)]);
    assert_eq!((t.size(), t.lb(), t.extent()), (27, 0, 48));
    assert_eq!(t.true_extent(), 41);
    assert_eq!(t.combiner().code(), 103);
}

/// MPI-4.1 §5.1.2 vector examples: vector(2, 3, 4, oldtype) and vector(3, 1, -2, oldtype).
#[test]
fn standard_vector_examples() {
    let old = double_char();
    let t = vector(2, 3, 4, &old).unwrap();
    assert_eq!(
        blocks_of(&t),
        [(0, 9), (16, 9), (32, 9), (64, 9), (80, 9), (96, 9)]
    );
    assert_eq!((t.size(), t.lb(), t.ub(), t.extent()), (54, 0, 112, 112));
    let n = vector(3, 1, -2, &old).unwrap();
    assert_eq!(blocks_of(&n), [(0, 9), (-32, 9), (-64, 9)]);
    assert_eq!((n.lb(), n.ub(), n.extent()), (-64, 16, 80));
    assert_eq!((n.true_lb(), n.true_extent()), (-64, 73));
    // vector of MPI_INT: a column of a 4x4 int matrix.
    let col = vector(4, 1, 4, &p(MPI_INT)).unwrap();
    assert_eq!((col.size(), col.extent()), (16, 52));
    assert_eq!(col.basic(), Some(Basic::I32));
    // Stride equal to the block length: contiguous.
    let c = vector(3, 2, 2, &p(MPI_INT)).unwrap();
    assert_eq!(blocks_of(&c), [(0, 24)]);
    assert!(c.is_contiguous());
}

/// MPI-4.1 §5.1.2: hvector(2, 3, 4 bytes, oldtype).
#[test]
fn standard_hvector_example() {
    let t = hvector(2, 3, 4, &double_char()).unwrap();
    assert_eq!(
        blocks_of(&t),
        [(0, 9), (16, 9), (32, 9), (4, 9), (20, 9), (36, 9)]
    );
    assert_eq!((t.size(), t.lb(), t.extent()), (54, 0, 52));
    assert_eq!(t.combiner().code(), 105);
}

/// MPI-4.1 §5.1.2: indexed(B = (3, 1), D = (4, 0), oldtype).
#[test]
fn standard_indexed_example() {
    let t = indexed(&[3, 1], &[4, 0], &double_char()).unwrap();
    assert_eq!(blocks_of(&t), [(64, 9), (80, 9), (96, 9), (0, 9)]);
    assert_eq!((t.size(), t.lb(), t.ub(), t.extent()), (36, 0, 112, 112));
    let h = hindexed(&[3, 1], &[64, 0], &double_char()).unwrap();
    assert_eq!(blocks_of(&h), blocks_of(&t));
    assert_eq!(h.extent(), 112);
    let ib = indexed_block(2, &[1, 5], &p(MPI_INT)).unwrap();
    assert_eq!(blocks_of(&ib), [(4, 8), (20, 8)]);
    assert_eq!((ib.lb(), ib.ub()), (4, 28));
    let hb = hindexed_block(2, &[4, 20], &p(MPI_INT)).unwrap();
    assert_eq!(blocks_of(&hb), blocks_of(&ib));
    assert_eq!(hb.combiner().code(), 109);
}

/// MPI-4.1 §5.1.2: struct(B = (2, 1, 3), D = (0, 16, 26), T = (MPI_FLOAT, type1, MPI_CHAR)).
#[test]
fn standard_struct_example() {
    let t = create_struct(
        &[2, 1, 3],
        &[0, 16, 26],
        &[p(MPI_FLOAT), double_char(), p(MPI_CHAR)],
    )
    .unwrap();
    assert_eq!(blocks_of(&t), [(0, 8), (16, 9), (26, 3)]);
    assert_eq!((t.size(), t.lb(), t.extent()), (20, 0, 32));
    assert_eq!(t.basic(), None);
    assert_eq!(t.num_elements(), 7);
    assert_eq!(t.combiner().code(), 110);
}

/// The alignment epsilon of §5.1.6 (as MPICH computes it).
#[test]
fn struct_epsilon() {
    let dc = double_char();
    assert_eq!((dc.size(), dc.extent(), dc.true_extent()), (9, 16, 9));
    let ic = create_struct(&[1, 1], &[0, 4], &[p(MPI_INT), p(MPI_CHAR)]).unwrap();
    assert_eq!(ic.extent(), 8);
    let cc = create_struct(&[3], &[0], &[p(MPI_CHAR)]).unwrap();
    assert_eq!(cc.extent(), 3);
    let ci = create_struct(&[1, 1], &[0, 2], &[p(MPI_CHAR), p(MPI_SHORT)]).unwrap();
    assert_eq!(ci.extent(), 4);
    let ld = create_struct(&[1, 1], &[0, 16], &[p(MPI_LONG_DOUBLE), p(MPI_CHAR)]).unwrap();
    assert_eq!(ld.extent(), 32);
    // A resized struct keeps the extent it is given.
    let r = resized(&dc, 0, 9).unwrap();
    assert_eq!(contiguous(2, &r).unwrap().extent(), 18);
    assert_eq!(blocks_of(&contiguous(2, &r).unwrap()), [(0, 18)]);
}

#[test]
fn resized_and_dup() {
    let r = resized(&p(MPI_INT), 0, 8).unwrap();
    assert_eq!(
        (r.size(), r.lb(), r.extent(), r.true_extent()),
        (4, 0, 8, 4)
    );
    assert!(!r.is_contiguous());
    let c = contiguous(3, &r).unwrap();
    assert_eq!(blocks_of(&c), [(0, 4), (8, 4), (16, 4)]);
    assert_eq!(c.extent(), 24);
    let l = resized(&p(MPI_INT), -4, 12).unwrap();
    assert_eq!((l.lb(), l.ub(), l.true_lb()), (-4, 8, 0));
    let c = contiguous(2, &l).unwrap();
    assert_eq!(blocks_of(&c), [(0, 4), (12, 4)]);
    assert_eq!((c.lb(), c.ub()), (-4, 20));
    let d = dup(&c).unwrap();
    assert_eq!(blocks_of(&d), blocks_of(&c));
    assert_eq!((d.lb(), d.ub(), d.size()), (c.lb(), c.ub(), c.size()));
    assert_eq!(d.combiner().code(), 102);
    assert_eq!(r.combiner().code(), 116);
    assert_eq!(dup(&p(MPI_INT)).unwrap().basic(), Some(Basic::I32));
}

#[test]
fn empty_types() {
    for t in [
        contiguous(0, &p(MPI_INT)).unwrap(),
        vector(0, 3, 4, &p(MPI_INT)).unwrap(),
        vector(3, 0, 4, &p(MPI_INT)).unwrap(),
        indexed(&[], &[], &p(MPI_INT)).unwrap(),
        indexed(&[0, 0], &[3, 4], &p(MPI_INT)).unwrap(),
        create_struct(&[], &[], &[]).unwrap(),
        create_struct(&[0], &[8], &[p(MPI_INT)]).unwrap(),
        contiguous(5, &contiguous(0, &p(MPI_INT)).unwrap()).unwrap(),
    ] {
        assert_eq!(t.size(), 0);
        assert_eq!((t.lb(), t.ub(), t.true_lb(), t.true_extent()), (0, 0, 0, 0));
        assert!(t.blocks().is_empty());
        assert_eq!(t.get_count(0), Some(0));
        assert_eq!(t.get_elements(0), Some(0));
        let mut out = [0u8; 4];
        // SAFETY: an empty type reads nothing.
        assert_eq!(unsafe { pack(&t, 10, std::ptr::null(), &mut out) }, 0);
    }
}

#[test]
fn errors() {
    let int = p(MPI_INT);
    assert_eq!(
        contiguous(-1, &int).unwrap_err(),
        DtypeError::NegativeCount {
            what: "count",
            value: -1
        }
    );
    assert!(matches!(
        vector(2, -1, 1, &int),
        Err(DtypeError::NegativeCount {
            what: "blocklength",
            ..
        })
    ));
    assert!(matches!(
        hvector(-3, 1, 1, &int),
        Err(DtypeError::NegativeCount { .. })
    ));
    assert_eq!(
        indexed(&[1], &[0, 1], &int).unwrap_err(),
        DtypeError::LengthMismatch
    );
    assert_eq!(
        create_struct(&[1, 1], &[0, 4], std::slice::from_ref(&int)).unwrap_err(),
        DtypeError::LengthMismatch
    );
    assert!(matches!(
        indexed(&[1, -2], &[0, 1], &int),
        Err(DtypeError::NegativeCount { .. })
    ));
    assert!(matches!(
        indexed_block(-2, &[0, 1], &int),
        Err(DtypeError::NegativeCount { .. })
    ));
    assert_eq!(
        hvector(2, 1, isize::MAX, &int).unwrap_err(),
        DtypeError::Overflow
    );
    assert_eq!(
        vector(2, 1, i64::MAX / 2, &int).unwrap_err(),
        DtypeError::Overflow
    );
    assert_eq!(
        contiguous(i64::MAX, &int).unwrap_err(),
        DtypeError::Overflow
    );
    assert_eq!(
        resized(&int, isize::MAX, 1).unwrap_err(),
        DtypeError::Overflow
    );
    assert_eq!(
        hindexed(&[1, 1], &[isize::MIN, isize::MAX], &int).unwrap_err(),
        DtypeError::Overflow
    );
    // Huge but contiguous: fine, one block.
    let big = contiguous(1 << 40, &p(MPI_BYTE)).unwrap();
    assert_eq!(blocks_of(&big), [(0, 1 << 40)]);
    let big = vector(1 << 40, 2, 2, &p(MPI_BYTE)).unwrap();
    assert_eq!(blocks_of(&big), [(0, 1 << 41)]);
    // Too many blocks to flatten: an error, not an exhausted memory or a hang.
    let holey = resized(&p(MPI_BYTE), 0, 2).unwrap();
    assert_eq!(
        contiguous(1 << 40, &holey).unwrap_err(),
        DtypeError::TooComplex
    );
    assert_eq!(
        vector(1 << 30, 1, 2, &p(MPI_BYTE)).unwrap_err(),
        DtypeError::TooComplex
    );
    assert!(!DtypeError::TooComplex.to_string().is_empty());
}

#[test]
fn names() {
    let t = contiguous(2, &p(MPI_INT)).unwrap();
    assert_eq!(t.name(), "");
    t.set_name("halo");
    assert_eq!(t.name(), "halo");
    let long = "é".repeat(100);
    t.set_name(&long);
    assert!(t.name().len() <= MAX_NAME_LEN);
    assert_eq!(t.name().len(), 126);
    assert_eq!(dup(&t).unwrap().name(), "");
}

#[test]
fn counts() {
    let dc = double_char();
    assert_eq!(dc.get_count(18), Some(2));
    assert_eq!(dc.get_count(9), Some(1));
    assert_eq!(dc.get_count(10), None);
    assert_eq!(dc.get_elements(18), Some(4));
    assert_eq!(dc.get_elements(9), Some(2));
    assert_eq!(dc.get_elements(8), Some(1));
    assert_eq!(dc.get_elements(17), Some(3));
    assert_eq!(dc.get_elements(5), None);
    let v = vector(2, 3, 4, &dc).unwrap();
    assert_eq!(v.num_elements(), 12);
    assert_eq!(v.get_elements(54 + 9 + 8), Some(15));
    assert_eq!(p(MPI_INT).get_count(12), Some(3));
    assert_eq!(p(MPI_INT).get_elements(6), None);
}

#[test]
fn pack_column_and_positions() {
    // Column 1 of a 4x4 matrix of i32.
    let m: Vec<i32> = (0..16).collect();
    let col = vector(4, 1, 4, &p(MPI_INT)).unwrap();
    let mut out = [0u8; 16];
    // SAFETY: the column of m[1..] reads m[1], m[5], m[9], m[13].
    let n = unsafe { pack(&col, 1, m[1..].as_ptr().cast(), &mut out) };
    assert_eq!(n, 16);
    let got: Vec<i32> = out
        .chunks(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [1, 5, 9, 13]);
    let mut back = [-1i32; 16];
    // SAFETY: writes back[1], back[5], back[9], back[13].
    let n = unsafe { unpack(&col, 1, &out, back[1..].as_mut_ptr().cast()) };
    assert_eq!(n, 16);
    assert_eq!(back[5], 5);
    assert_eq!(back[4], -1);

    // MPI_Pack / MPI_Unpack positions: an int then the column.
    let mut buf = [0u8; 24];
    let mut pos = 0;
    let x = 42i32;
    // SAFETY: reads one int at &x, then the column of m.
    unsafe {
        pack_at(
            &p(MPI_INT),
            1,
            (&x as *const i32).cast(),
            &mut buf,
            &mut pos,
        )
        .unwrap();
        pack_at(&col, 1, m.as_ptr().cast(), &mut buf, &mut pos).unwrap();
    }
    assert_eq!(pos, 20);
    let err = unsafe { pack_at(&col, 1, m.as_ptr().cast(), &mut buf, &mut pos) };
    assert_eq!(
        err,
        Err(DtypeError::Truncated {
            needed: 16,
            available: 4
        })
    );
    assert_eq!(pos, 20);
    let mut y = 0i32;
    let mut dst = [0i32; 16];
    let mut pos = 0;
    // SAFETY: writes one int at &y, then the column of dst.
    unsafe {
        unpack_at(&buf, &mut pos, &p(MPI_INT), 1, (&mut y as *mut i32).cast()).unwrap();
        unpack_at(&buf, &mut pos, &col, 1, dst.as_mut_ptr().cast()).unwrap();
    }
    assert_eq!((y, pos), (42, 20));
    assert_eq!([dst[0], dst[4], dst[8], dst[12]], [0, 4, 8, 12]);
    let err = unsafe { unpack_at(&buf, &mut pos, &col, 1, dst.as_mut_ptr().cast()) };
    assert!(matches!(err, Err(DtypeError::Truncated { .. })));
    assert_eq!(pack_size(&col, 3), Ok(48));
    assert_eq!(pack_size(&col, usize::MAX), Err(DtypeError::Overflow));
}

#[test]
fn segments_coalesce() {
    // resized(int, 0, 4) blocks of a 2-int struct laid back to back: one run.
    let t = create_struct(&[1, 1], &[0, 4], &[p(MPI_INT), p(MPI_FLOAT)]).unwrap();
    let mut segs = Vec::new();
    let n = for_each_segment(&t, 4, 0, usize::MAX, |d, l| segs.push((d, l)));
    assert_eq!((n, segs), (32, vec![(0, 32)]));
    let sh = p(MPI_SHORT_INT);
    let mut segs = Vec::new();
    let n = for_each_segment(&sh, 2, 1, 9, |d, l| segs.push((d, l)));
    assert_eq!(n, 9);
    assert_eq!(segs, [(1, 1), (4, 6), (12, 2)]);
}

/// Constructors given extreme arguments return an error or a type; they never panic (also
/// checked in debug builds, where overflowing arithmetic would panic).
#[test]
fn extreme_arguments_never_panic() {
    let counts = [i64::MIN, -1, 0, 1, 3, 1 << 40, i64::MAX];
    let strides = [isize::MIN, -(1 << 62), -1, 0, 7, 1 << 62, isize::MAX];
    let olds = [
        p(MPI_INT),
        p(MPI_SHORT_INT),
        resized(&p(MPI_INT), -8, 16).unwrap(),
        resized(&p(MPI_INT), isize::MAX - 8, -16).unwrap(),
        contiguous(0, &p(MPI_INT)).unwrap(),
    ];
    for old in &olds {
        for &c in &counts {
            let _ = contiguous(c, old);
            let _ = resized(old, c as isize, c as isize);
            for &b in &counts {
                for &s in &strides {
                    let _ = vector(c, b, s as i64, old);
                    let _ = hvector(c, b, s, old);
                    let _ = indexed(&[c, b], &[s as i64, 0], old);
                    let _ = hindexed(&[c, b], &[s, 0], old);
                    let _ = indexed_block(c, &[s as i64, b], old);
                    let _ = hindexed_block(b, &[s, c as isize], old);
                    let _ = create_struct(&[c, b], &[s, 0], &[old.clone(), p(MPI_CHAR)]);
                }
            }
        }
    }
}

// ---- property test: random nested types against a naive expansion of the standard ----

/// A random datatype construction.
#[derive(Clone, Debug)]
enum Spec {
    Pre(usize),
    Contig(i64, Box<Spec>),
    Vector(i64, i64, i64, Box<Spec>),
    Hvector(i64, i64, isize, Box<Spec>),
    Indexed(Vec<(i64, i64)>, Box<Spec>),
    Hindexed(Vec<(i64, isize)>, Box<Spec>),
    IndexedBlock(i64, Vec<i64>, Box<Spec>),
    HindexedBlock(i64, Vec<isize>, Box<Spec>),
    Struct(Vec<(i64, isize, Spec)>),
    Resized(isize, isize, Box<Spec>),
    Dup(Box<Spec>),
}

fn build(s: &Spec) -> Arc<Datatype> {
    match s {
        Spec::Pre(h) => p(*h),
        Spec::Contig(n, o) => contiguous(*n, &build(o)).unwrap(),
        Spec::Vector(c, b, st, o) => vector(*c, *b, *st, &build(o)).unwrap(),
        Spec::Hvector(c, b, st, o) => hvector(*c, *b, *st, &build(o)).unwrap(),
        Spec::Indexed(v, o) => {
            let (b, d): (Vec<i64>, Vec<i64>) = v.iter().copied().unzip();
            indexed(&b, &d, &build(o)).unwrap()
        }
        Spec::Hindexed(v, o) => {
            let (b, d): (Vec<i64>, Vec<isize>) = v.iter().copied().unzip();
            hindexed(&b, &d, &build(o)).unwrap()
        }
        Spec::IndexedBlock(b, d, o) => indexed_block(*b, d, &build(o)).unwrap(),
        Spec::HindexedBlock(b, d, o) => hindexed_block(*b, d, &build(o)).unwrap(),
        Spec::Struct(v) => {
            let b: Vec<i64> = v.iter().map(|x| x.0).collect();
            let d: Vec<isize> = v.iter().map(|x| x.1).collect();
            let t: Vec<Arc<Datatype>> = v.iter().map(|x| build(&x.2)).collect();
            create_struct(&b, &d, &t).unwrap()
        }
        Spec::Resized(lb, ext, o) => resized(&build(o), *lb, *ext).unwrap(),
        Spec::Dup(o) => dup(&build(o)).unwrap(),
    }
}

/// The naive type map: every basic entry `(disp, size)` in order, and the bounds.
#[derive(Clone, Debug)]
struct Ref {
    entries: Vec<(isize, usize)>,
    lb: isize,
    ub: isize,
    align: usize,
}

impl Ref {
    fn size(&self) -> usize {
        self.entries.iter().map(|e| e.1).sum()
    }
}

/// Combines `(disp, n, old)` parts copy by copy, per the standard's definitions.
fn naive_parts(parts: &[(isize, i64, Ref)], pad: bool) -> Ref {
    let mut entries = Vec::new();
    let mut bounds: Option<(isize, isize)> = None;
    let mut align = 1;
    for (disp, n, old) in parts {
        let ext = old.ub - old.lb;
        for k in 0..*n as isize {
            let off = disp + k * ext;
            entries.extend(old.entries.iter().map(|&(d, l)| (off + d, l)));
            let (lo, hi) = (off + old.lb, off + old.ub);
            bounds = Some(match bounds {
                None => (lo, hi),
                Some((l, u)) => (l.min(lo), u.max(hi)),
            });
        }
        if *n > 0 {
            align = align.max(old.align);
        }
    }
    let r = Ref {
        entries,
        lb: bounds.map_or(0, |b| b.0),
        ub: bounds.map_or(0, |b| b.1),
        align,
    };
    if r.size() == 0 {
        return Ref {
            entries: Vec::new(),
            lb: 0,
            ub: 0,
            align: 1,
        };
    }
    let mut r = r;
    if pad {
        let a = r.align as isize;
        let eps = (r.ub - r.lb).rem_euclid(a);
        if eps != 0 {
            r.ub += a - eps;
        }
    }
    r
}

fn naive(s: &Spec) -> Ref {
    match s {
        Spec::Pre(h) => {
            let b = p(*h).basic().unwrap();
            let entries = match b.pair_members() {
                Some(m) => m.iter().map(|&(d, k)| (d as isize, k.size())).collect(),
                None => vec![(0, b.size())],
            };
            Ref {
                entries,
                lb: 0,
                ub: b.extent() as isize,
                align: b.align(),
            }
        }
        Spec::Contig(n, o) => naive_parts(&[(0, *n, naive(o))], false),
        Spec::Vector(c, b, st, o) => {
            let old = naive(o);
            let ext = old.ub - old.lb;
            let parts: Vec<_> = (0..*c)
                .map(|i| (i as isize * *st as isize * ext, *b, old.clone()))
                .collect();
            naive_parts(&parts, false)
        }
        Spec::Hvector(c, b, st, o) => {
            let old = naive(o);
            let parts: Vec<_> = (0..*c)
                .map(|i| (i as isize * st, *b, old.clone()))
                .collect();
            naive_parts(&parts, false)
        }
        Spec::Indexed(v, o) => {
            let old = naive(o);
            let ext = old.ub - old.lb;
            let parts: Vec<_> = v
                .iter()
                .map(|&(b, d)| (d as isize * ext, b, old.clone()))
                .collect();
            naive_parts(&parts, false)
        }
        Spec::Hindexed(v, o) => {
            let old = naive(o);
            let parts: Vec<_> = v.iter().map(|&(b, d)| (d, b, old.clone())).collect();
            naive_parts(&parts, false)
        }
        Spec::IndexedBlock(b, ds, o) => {
            let old = naive(o);
            let ext = old.ub - old.lb;
            let parts: Vec<_> = ds
                .iter()
                .map(|&d| (d as isize * ext, *b, old.clone()))
                .collect();
            naive_parts(&parts, false)
        }
        Spec::HindexedBlock(b, ds, o) => {
            let old = naive(o);
            let parts: Vec<_> = ds.iter().map(|&d| (d, *b, old.clone())).collect();
            naive_parts(&parts, false)
        }
        Spec::Struct(v) => {
            let parts: Vec<_> = v.iter().map(|(b, d, t)| (*d, *b, naive(t))).collect();
            naive_parts(&parts, true)
        }
        Spec::Resized(lb, ext, o) => {
            let mut r = naive(o);
            r.lb = *lb;
            r.ub = lb + ext;
            r
        }
        Spec::Dup(o) => naive(o),
    }
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    let leaf = prop::sample::select(vec![
        MPI_INT,
        MPI_CHAR,
        MPI_DOUBLE,
        MPI_FLOAT,
        MPI_SHORT,
        MPI_SHORT_INT,
        MPI_DOUBLE_INT,
        MPI_2INT,
        MPI_LONG_DOUBLE,
        MPI_BYTE,
    ])
    .prop_map(Spec::Pre);
    leaf.prop_recursive(3, 32, 4, |inner| {
        let b = || 0i64..3;
        prop_oneof![
            (0i64..4, inner.clone()).prop_map(|(n, s)| Spec::Contig(n, Box::new(s))),
            (0i64..4, b(), -3i64..4, inner.clone()).prop_map(|(c, bl, st, s)| Spec::Vector(
                c,
                bl,
                st,
                Box::new(s)
            )),
            (0i64..4, b(), -40isize..40, inner.clone()).prop_map(|(c, bl, st, s)| Spec::Hvector(
                c,
                bl,
                st,
                Box::new(s)
            )),
            (prop::collection::vec((b(), -4i64..5), 0..4), inner.clone())
                .prop_map(|(v, s)| Spec::Indexed(v, Box::new(s))),
            (
                prop::collection::vec((b(), -40isize..40), 0..4),
                inner.clone()
            )
                .prop_map(|(v, s)| Spec::Hindexed(v, Box::new(s))),
            (b(), prop::collection::vec(-4i64..5, 0..4), inner.clone())
                .prop_map(|(bl, v, s)| Spec::IndexedBlock(bl, v, Box::new(s))),
            (
                b(),
                prop::collection::vec(-40isize..40, 0..4),
                inner.clone()
            )
                .prop_map(|(bl, v, s)| Spec::HindexedBlock(bl, v, Box::new(s))),
            prop::collection::vec((b(), -32isize..64, inner.clone()), 1..4).prop_map(Spec::Struct),
            (-16isize..16, -8isize..40, inner.clone()).prop_map(|(lb, e, s)| Spec::Resized(
                lb,
                e,
                Box::new(s)
            )),
            inner.prop_map(|s| Spec::Dup(Box::new(s))),
        ]
    })
}

/// Byte positions of the type map of `count` elements, in packing order.
fn positions(r: &Ref, count: usize) -> Vec<isize> {
    let ext = r.ub - r.lb;
    let mut v = Vec::new();
    for k in 0..count as isize {
        for &(d, l) in &r.entries {
            v.extend((0..l as isize).map(|i| k * ext + d + i));
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_types_match_the_standard(
        spec in spec_strategy(),
        count in 0usize..4,
        cuts in prop::collection::vec(1usize..40, 0..6),
    ) {
        let dt = build(&spec);
        let r = naive(&spec);
        // Size, bounds, true bounds, elements.
        prop_assert_eq!(dt.size(), r.size());
        prop_assert_eq!((dt.lb(), dt.ub()), (r.lb, r.ub));
        let tlb = r.entries.iter().map(|e| e.0).min().unwrap_or(0);
        let tub = r.entries.iter().map(|e| e.0 + e.1 as isize).max().unwrap_or(0);
        prop_assert_eq!((dt.true_lb(), dt.true_lb() + dt.true_extent()), (tlb, tub));
        prop_assert_eq!(dt.num_elements(), r.entries.len() as u64);
        // The flattened blocks cover the same bytes in the same order, merged.
        let flat: Vec<isize> = dt.blocks().iter()
            .flat_map(|b| (0..b.len as isize).map(move |i| b.disp + i)).collect();
        prop_assert_eq!(&flat, &positions(&r, 1));
        for w in dt.blocks().windows(2) {
            prop_assert!(w[0].disp + w[0].len as isize != w[1].disp, "unmerged {:?}", w);
        }
        // MPI_Get_elements / MPI_Get_count for every byte count over two elements.
        let mut bounds = vec![0usize];
        for _ in 0..2 {
            for e in &r.entries {
                let last = *bounds.last().unwrap();
                bounds.push(last + e.1);
            }
        }
        for bytes in 0..=2 * r.size() {
            let want = bounds.iter().position(|&b| b == bytes).map(|i| i as u64);
            prop_assert_eq!(dt.get_elements(bytes), want, "bytes {}", bytes);
            if r.size() > 0 {
                let c = (bytes % r.size() == 0).then_some((bytes / r.size()) as u64);
                prop_assert_eq!(dt.get_count(bytes), c);
            }
        }

        // Pack / unpack round trip over a buffer covering every position.
        let pos = positions(&r, count);
        let lo = pos.iter().copied().min().unwrap_or(0).min(0);
        let hi = pos.iter().copied().max().unwrap_or(0).max(0);
        let len = (hi - lo + 1) as usize;
        let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let base = src.as_ptr().wrapping_offset(-lo);
        let total = count * r.size();
        let mut packed = vec![0u8; total];
        // SAFETY: every position of the type map of `count` elements is inside `src`.
        let n = unsafe { pack(&dt, count, base, &mut packed) };
        prop_assert_eq!(n, total);
        let want: Vec<u8> = pos.iter().map(|&q| src[(q - lo) as usize]).collect();
        prop_assert_eq!(&packed, &want);

        let mut dst = vec![0xEEu8; len];
        let dbase = dst.as_mut_ptr().wrapping_offset(-lo);
        // SAFETY: as above, for `dst`.
        let n = unsafe { unpack(&dt, count, &packed, dbase) };
        prop_assert_eq!(n, total);
        let mut touched = vec![false; len];
        for &q in &pos {
            touched[(q - lo) as usize] = true;
        }
        for i in 0..len {
            if touched[i] {
                prop_assert_eq!(dst[i], src[i]);
            } else {
                prop_assert_eq!(dst[i], 0xEE);
            }
        }

        // Chunked packing over any split equals the whole pack; same for unpacking.
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle().take(if cuts.is_empty() { 0 } else { 64 }) {
            if at >= total { break; }
            let l = (*c).min(total - at);
            chunks.push((at, l));
            at += l;
        }
        if at < total {
            chunks.push((at, total - at));
        }
        let mut again = vec![0u8; total];
        for &(off, l) in &chunks {
            // SAFETY: as above.
            let n = unsafe { pack_range(&dt, count, base, off, &mut again[off..off + l]) };
            prop_assert_eq!(n, l);
        }
        prop_assert_eq!(&again, &packed);
        let mut dst2 = vec![0xEEu8; len];
        let dbase2 = dst2.as_mut_ptr().wrapping_offset(-lo);
        for &(off, l) in &chunks {
            // SAFETY: as above, for `dst2`.
            let n = unsafe { unpack_range(&dt, count, &packed[off..off + l], off, dbase2) };
            prop_assert_eq!(n, l);
        }
        prop_assert_eq!(&dst2, &dst);
        // Ranges past the end are clipped.
        let mut tail = vec![0u8; 8];
        // SAFETY: nothing is read past the message.
        let n = unsafe { pack_range(&dt, count, base, total, &mut tail) };
        prop_assert_eq!(n, 0);
        // A short destination gets the leading bytes.
        if total > 1 {
            let mut short = vec![0u8; total / 2];
            // SAFETY: as above.
            let n = unsafe { pack(&dt, count, base, &mut short) };
            prop_assert_eq!(n, total / 2);
            prop_assert_eq!(&short[..], &packed[..total / 2]);
        }
    }
}
