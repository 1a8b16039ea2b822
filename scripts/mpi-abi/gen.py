#!/usr/bin/env python3
"""Generator of tocsin-mpi's MPI standard ABI surface (MPI 5.0, chapter "Application Binary
Interface").

Inputs
  * pympistandard (PyPI, MIT): the MPI Forum's machine-readable API; gives every function's
    ISO C binding (with the `_c` large-count variants) and the callback typedefs.
  * crates/tocsin-mpi/abi/constants.txt: the constants, predefined handle values and types of
    the standard ABI, as data (facts of the standard), extracted once from the reference header
    with `gen.py extract PATH/TO/mpi_abi.h`.

Outputs (committed)
  * crates/tocsin-mpi/include/mpi.h       the standard ABI header
  * crates/tocsin-mpi/abi/functions.txt   the export list, one C prototype per line
  * crates/tocsin-mpi/src/abi.rs          Rust constants and types

Usage
  python3 scripts/mpi-abi/gen.py            regenerate the outputs
  python3 scripts/mpi-abi/gen.py --check    exit 1 (listing the files) if an output differs
  python3 scripts/mpi-abi/gen.py extract H  rewrite abi/constants.txt from reference header H

Only the standard library and pympistandard are used.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATE = ROOT / "crates" / "tocsin-mpi"
CONSTANTS = CRATE / "abi" / "constants.txt"
HEADER = CRATE / "include" / "mpi.h"
FUNCTIONS = CRATE / "abi" / "functions.txt"
ABI_RS = CRATE / "src" / "abi.rs"

# Functions of the standard's C bindings that the standard ABI excludes: everything of
# MPI_Fint and the Fortran status conversions (MPI 5.0 ABI chapter; the stubs removed them in
# fca839f). The `_toint`/`_fromint` functions replace the c2f/f2c handle converters.
EXCLUDED = re.compile(r"^MPI_(\w+_(c2f|f2c)|Status_(c2f08|f082c|f082f|f2f08))$")

# Errata of pympistandard 0.2.0's C rendering, corrected to the standard's text (each one is
# listed in abi/DIFFERENCES.md): function -> (rendered, standard).
ERRATA = {
    "MPI_Info_create_env": ("int argc, char argv[],", "int argc, char *argv[],"),
}

# Handle types of the ABI (the order of the reference header), with their struct tags.
HANDLES = ["Op", "Comm", "Group", "Win", "File", "Session", "Message", "Info", "Errhandler",
           "Request", "Datatype"]

# Handle kinds for the opt-in MPI_Fint extension: (C name in c2f/f2c, ABI handle type,
# toint/fromint stem).
FINT_KINDS = [("Comm", "MPI_Comm", "Comm"), ("Errhandler", "MPI_Errhandler", "Errhandler"),
              ("File", "MPI_File", "File"), ("Group", "MPI_Group", "Group"),
              ("Info", "MPI_Info", "Info"), ("Message", "MPI_Message", "Message"),
              ("Op", "MPI_Op", "Op"), ("Request", "MPI_Request", "Request"),
              ("Session", "MPI_Session", "Session"), ("Type", "MPI_Datatype", "Type"),
              ("Win", "MPI_Win", "Win")]

RUST_KEYWORDS = {"as", "break", "const", "continue", "crate", "else", "enum", "extern",
                 "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod",
                 "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct",
                 "super", "trait", "true", "type", "unsafe", "use", "where", "while", "async",
                 "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
                 "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen"}


# ---------------------------------------------------------------------------------------------
# extraction of the data file (run once)

def extract(ref: Path) -> None:
    """Write abi/constants.txt from the non-function part of reference header `ref`."""
    text = ref.read_text()
    head = text.split("/* MPI functions */")[0]
    out = [
        "# Constants, predefined handles and types of the MPI 5.0 standard ABI: facts of the",
        "# standard, carried as data. Extracted once by `scripts/mpi-abi/gen.py extract` from the",
        "# reference header (include/mpi_abi.h of the PyPI mpich 5.0.2 wheel, identical in these",
        "# values to mpi-forum/mpi-abi-stubs mpi.h, MIT). See abi/README.md and DIFFERENCES.md.",
        "#",
        "# Lines: comment TEXT | handle TYPE STRUCT | value TYPE NAME VALUE | alias NAME OTHER",
        "#        enum-begin [TYPEDEF] | enumerator NAME VALUE | enum-end | define NAME VALUE",
        "#        pointer POINTEE NAME VALUE | typed TYPE NAME VALUE | callbacks",
        "#        typedef NAME EXISTING | fnptr CALLBACK NAME VALUE",
    ]
    late = []  # typedef aliases and function-pointer constants: after the callback typedefs
    skipped = []
    in_enum = False
    for line in head.splitlines():
        s = line.strip()
        if not s or s.startswith("#if") or s.startswith("#endif") or s.startswith("#undef"):
            continue
        if s.startswith("#include") or s.startswith('extern "C"') or s == "}" or \
                s.startswith("#ifndef MPI_H_ABI") or s.startswith("#define MPI_H_ABI"):
            continue
        m = re.match(r"/\*\s*(.*?)\s*\*/$", s)
        if m:
            if not in_enum and not m.group(1).startswith("MPI_Aint") and \
                    not m.group(1).startswith("MPI_Offset") and \
                    not m.group(1).startswith("MPI_Count") and \
                    not m.group(1).startswith("We allow") and \
                    not m.group(1).startswith("Platforms"):
                out.append(f"comment {m.group(1)}")
            elif in_enum:
                out.append(f"comment {m.group(1)}")
            continue
        if s.startswith("/*") or s.startswith("*"):
            continue  # multi-line comments of the integer types (template text)
        if re.match(r"#define MPI_(SUB)?VERSION|#define MPI_ABI_(SUB)?VERSION|#define MPI_ABI_", s):
            continue  # versions and type overrides: template facts of gen.py
        if s.startswith("typedef MPI_ABI_") or s.startswith("typedef struct {") or \
                s.startswith("int MPI_") or s.startswith("} MPI_Status"):
            continue  # integer types, MPI_Status: template facts of gen.py
        m = re.match(r"typedef struct (\w+)\s*\*\s*(\w+);$", s)
        if m:
            struct, name = m.groups()
            if name.startswith("MPI_T_"):
                struct = "MPI_ABI_T_" + name[len("MPI_T_"):]  # the standard's tag, see DIFFERENCES.md
            out.append(f"handle {name} {struct}")
            continue
        m = re.match(r"#define (MPIX?_\w+)\s+\(\((\w+)\)(-?0x[0-9a-fA-F]+|-?\d+)\)", s)
        if m:
            name, typ, val = m.groups()
            if typ in ("MPI_Offset",):
                out.append(f"typed {typ} {name} {val}")
            else:
                out.append(f"value {typ} {name} {val}")
            continue
        m = re.match(r"#define (MPIX?_\w+)\s+\(\(([\w ]+\*+)\)(0x[0-9a-fA-F]+|\d+)\)", s)
        if m:
            name, ptr, val = m.groups()
            base = ptr[:-1].strip()
            if base.endswith("_function") or base.endswith("_function_c"):
                late.append(f"fnptr {base} {name} {val}")
            else:
                out.append(f"pointer {base.replace(' ', '')} {name} {val}")
            continue
        m = re.match(r"#define (MPI_\w+)\s+(MPI_\w+)$", s)
        if m:
            out.append(f"alias {m.group(1)} {m.group(2)}")
            continue
        m = re.match(r"#define (MPI_\w+)\s+(-?\d+)", s)
        if m:
            out.append(f"define {m.group(1)} {m.group(2)}")
            continue
        m = re.match(r"(typedef\s+)?enum\s*(\w*)\s*\{$", s)
        if m:
            out.append(("enum-begin " + m.group(2)).rstrip())
            in_enum = True
            continue
        if re.match(r"\}\s*\w*\s*;$", s):
            out.append("enum-end")
            in_enum = False
            continue
        m = re.match(r"(MPIX?_\w+)\s*=\s*(-?\w+),?", s)
        if m and in_enum:
            out.append(f"enumerator {m.group(1)} {m.group(2)}")
            continue
        m = re.match(r"typedef (MPI_\w+) (MPI_\w+);$", s)
        if m:
            late.append(f"typedef {m.group(2)} {m.group(1)}")
            continue
        if s.startswith("typedef"):
            if "MPIX_" in s:
                skipped.append(s)
            continue  # callback typedefs: generated from pympistandard
        raise SystemExit(f"extract: unrecognised line: {s}")
    out.append("callbacks")
    out.extend(late)
    CONSTANTS.write_text("\n".join(out) + "\n")
    for s in skipped:
        print(f"extract: skipped (not standard): {s}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# the data file

def load_constants():
    items = []
    for raw in CONSTANTS.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        kind, _, rest = raw.partition(" ")
        items.append((kind, rest.split(" ") if kind != "comment" else [rest]))
    return items


# ---------------------------------------------------------------------------------------------
# pympistandard

def c_style(proto: str) -> str:
    """pympistandard writes `void* buf`; the ABI header writes `void *buf`."""
    proto = proto.replace("\\ldots", "...")
    proto = re.sub(r"(\w)(\*+) (\w)", r"\1 \2\3", proto)
    return proto


def load_standard():
    import pympistandard as std  # noqa: PLC0415 (only needed for generation)

    std.use_api_version(1, force_bundled=True)
    functions = {}
    for proc in std.PROCEDURES.values():
        for expr in (proc.express.iso_c,
                     proc.express.embiggen.iso_c if proc.has_embiggenment() else None):
            if expr is None:
                continue
            if EXCLUDED.match(expr.name):
                continue
            proto = c_style(str(expr))
            if expr.name in ERRATA:
                wrong, right = ERRATA[expr.name]
                if wrong not in proto:
                    raise SystemExit(f"gen: erratum of {expr.name} no longer applies: {proto}")
                proto = proto.replace(wrong, right)
            functions[expr.name] = proto
    callbacks = {}
    for cb in std.CALLBACKS.values():
        for expr in (cb.express.iso_c, cb.express.embiggen.iso_c):
            if expr is None:
                continue
            text = c_style(str(expr))
            m = re.match(r"typedef (\w+) (\w+)\((.*)\)$", text)
            ret, name, params = m.groups()
            callbacks[name] = (ret, params)
    return dict(sorted(functions.items(), key=lambda kv: kv[0].lower())), \
        dict(sorted(callbacks.items()))


# ---------------------------------------------------------------------------------------------
# C -> Rust types (the same rules as build.rs)

RUST_BASE = {"int": "c_int", "double": "f64", "char": "c_char", "void": "c_void"}


def split_params(params: str):
    if params.strip() in ("void", ""):
        return []
    return [p.strip() for p in params.split(",")]


def parse_param(p: str):
    """-> (name, rust type) of one C parameter; ('...', None) for the ellipsis."""
    if p == "...":
        return "...", None
    m = re.match(r"^(const\s+)?(\w+)\s*(\**)\s*(\w+)?\s*((?:\[\w*\])*)$", p)
    if not m:
        raise SystemExit(f"gen: cannot parse parameter '{p}'")
    const, base, stars, name, arrays = m.groups()
    dims = re.findall(r"\[(\w*)\]", arrays)
    levels = len(stars) + (1 if dims else 0)
    inner = dims[1:]
    if base.endswith("_function") or base.endswith("_function_c"):
        rust = base
        levels = max(levels - 1, 0)
    else:
        rust = RUST_BASE.get(base, base)
    for n in reversed(inner):
        rust = f"[{rust}; {n}]"
    for i in range(levels):
        rust = f"*{'const' if (i == 0 and const) else 'mut'} {rust}"
    name = name or "arg"
    if name in RUST_KEYWORDS:
        name += "_"
    return name, rust


def rust_ret(t: str) -> str:
    return RUST_BASE.get(t, t)


# ---------------------------------------------------------------------------------------------
# outputs

def gen_functions(functions) -> str:
    lines = [f"{proto};" for proto in functions.values()]
    return "\n".join(lines) + "\n"


def c_const_lines(items, callbacks):
    out = []
    enum = None  # (typedef name, [(is_comment, text)]) while inside an enum
    for kind, a in items:
        if enum is not None:
            if kind == "comment":
                enum[1].append((True, f"    /* {a[0]} */"))
            elif kind == "enumerator":
                enum[1].append((False, f"    {a[0]:<34} = {a[1]}"))
            elif kind == "enum-end":
                last = max(i for i, (c, _) in enumerate(enum[1]) if not c)
                for i, (c, text) in enumerate(enum[1]):
                    out.append(text + ("," if not c and i != last else ""))
                out.append(f"}} {enum[0]};" if enum[0] else "};")
                enum = None
            else:
                raise SystemExit(f"gen: '{kind}' inside an enum")
            continue
        if kind == "comment":
            out.append("")
            out.append(f"/* {a[0]} */")
        elif kind == "handle":
            if not out or not out[-1].startswith("typedef struct"):
                out.append("")
            out.append(f"typedef struct {a[1]} *{a[0]};")
        elif kind == "value":
            out.append(f"#define {a[1]:<30} (({a[0]}){a[2]})")
        elif kind in ("alias", "define"):
            out.append(f"#define {a[0]:<30} {a[1]}")
        elif kind == "pointer":
            out.append(f"#define {a[1]:<30} (({a[0]}*){a[2]})")
        elif kind == "typed":
            out.append(f"#define {a[1]:<30} (({a[0]}){a[2]})")
        elif kind == "enum-begin":
            name = a[0] if a else ""
            if out[-1] != "" and not out[-1].startswith("/*"):
                out.append("")
            out.append(f"typedef enum {name} {{" if name else "enum {")
            enum = (name, [])
        elif kind == "callbacks":
            out.append("")
            out.append("/* Callback function types */")
            for name, (ret, params) in callbacks.items():
                out.append(f"typedef {ret} ({name})({params});")
        elif kind == "typedef":
            out.append(f"typedef {a[1]} {a[0]};")
        elif kind == "fnptr":
            out.append(f"#define {a[1]:<30} (({a[0]}*){a[2]})")
        else:
            raise SystemExit(f"gen: unknown data line kind {kind}")
    return out


def gen_header(items, functions, callbacks) -> str:
    h = []
    h.append("""/* mpi.h: the MPI 5.0 standard ABI header of tocsin-mpi (library libmpi_abi.so.1).
 *
 * GENERATED by scripts/mpi-abi/gen.py from pympistandard (the MPI Forum's machine-readable
 * API, MIT) and crates/tocsin-mpi/abi/constants.txt (values of the standard ABI, taken from the
 * reference header of mpi-forum/mpi-abi-stubs / MPICH's mpi_abi.h, MIT: Copyright (c) 2024
 * NVIDIA, (c) 2026 KAUST). Do not edit: edit the generator or the data and regenerate.
 */
#ifndef MPI_H_ABI
#define MPI_H_ABI

#include <stdint.h>

#if defined(__cplusplus)
extern "C" {
#endif

#define MPI_VERSION    5
#define MPI_SUBVERSION 0

#define MPI_ABI_VERSION    1
#define MPI_ABI_SUBVERSION 0

/* Integer types of the ABI */
typedef intptr_t MPI_Aint;
typedef int64_t  MPI_Offset;
typedef int64_t  MPI_Count;

/* Status: 8 ints, alignment of int */
typedef struct {
    int MPI_SOURCE;
    int MPI_TAG;
    int MPI_ERROR;
    int MPI_internal[5];
} MPI_Status;""")
    h.extend(c_const_lines(items, callbacks))
    h.append("")
    h.append("/* MPI functions */")
    for proto in functions.values():
        h.append(f"{proto};")
    h.append("")
    h.append("/* PMPI functions (profiling interface) */")
    for name, proto in functions.items():
        h.append(f"{proto.replace(' ' + name + '(', ' P' + name + '(', 1)};")
    h.append("")
    h.append("""/* Opt-in, NOT part of the standard ABI: MPI_Fint and the Fortran handle converters,
 * forwarding to the standard's MPI_<T>_toint / MPI_<T>_fromint. Define TOCSIN_MPI_FINT before
 * including mpi.h to get them (rsmpi's C shim needs them). */
#if defined(TOCSIN_MPI_FINT)
typedef int MPI_Fint;""")
    for c, typ, stem in FINT_KINDS:
        h.append(f"static inline MPI_Fint MPI_{c}_c2f({typ} h) {{ return (MPI_Fint)MPI_{stem}_toint(h); }}")
        h.append(f"static inline {typ} MPI_{c}_f2c(MPI_Fint i) {{ return MPI_{stem}_fromint((int)i); }}")
    h.append("#endif /* TOCSIN_MPI_FINT */")
    h.append("""
#if defined(__cplusplus)
}
#endif

#endif /* MPI_H_ABI */""")
    return "\n".join(h) + "\n"


def rust_doc_name(s: str) -> str:
    return s.replace("[", "\\[").replace("]", "\\]")


def gen_rust(items, callbacks) -> str:
    r = []
    r.append("""//! Constants and C types of the MPI 5.0 standard ABI (`include/mpi.h`), for Rust.
//!
//! GENERATED by `scripts/mpi-abi/gen.py` from `abi/constants.txt` and pympistandard; do not
//! edit (see `abi/README.md`). Predefined handles and pointer constants are given as their
//! integer value (`usize`): turn one into a handle with `MPI_COMM_WORLD as MPI_Comm`. Integer
//! constants (C enums and `#define`s) are `c_int`. Callback types are nullable function
//! pointers; the variadic error-handler callbacks are declared with `...` as in C.

#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

use core::ffi::{c_char, c_int, c_void};

/// `MPI_VERSION`: the MPI standard version of this ABI.
pub const MPI_VERSION: c_int = 5;
/// `MPI_SUBVERSION`.
pub const MPI_SUBVERSION: c_int = 0;
/// `MPI_ABI_VERSION`: the standard ABI major version (what `MPI_Abi_get_version` reports).
pub const MPI_ABI_VERSION: c_int = 1;
/// `MPI_ABI_SUBVERSION`: the standard ABI minor version.
pub const MPI_ABI_SUBVERSION: c_int = 0;

/// `MPI_Aint`: `intptr_t`.
pub type MPI_Aint = isize;
/// `MPI_Offset`: `int64_t`.
pub type MPI_Offset = i64;
/// `MPI_Count`: `int64_t`.
pub type MPI_Count = i64;

/// `MPI_Status`: exactly 8 C ints (32 bytes, alignment of `int`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MPI_Status {
    /// Source rank of the received message.
    pub MPI_SOURCE: c_int,
    /// Tag of the received message.
    pub MPI_TAG: c_int,
    /// Error code (set by the multiple-completion functions).
    pub MPI_ERROR: c_int,
    /// Implementation-defined words (count, cancelled flag): unaligned for 64-bit values.
    pub MPI_internal: [c_int; 5],
}""")
    cur_type = {}
    for kind, a in items:
        if kind == "comment":
            r.append(f"\n// {a[0]}")
        elif kind == "handle":
            name, struct = a
            r.append(f"""
/// Incomplete struct behind the `{name}` handle (never dereferenced for predefined handles).
#[repr(C)]
pub struct {struct} {{
    _p: [u8; 0],
}}
/// `{name}`: handle, pointer to the incomplete struct `{struct}`.
pub type {name} = *mut {struct};""")
        elif kind == "value":
            r.append(f"/// `{a[1]}`: predefined `{a[0]}` handle value.")
            r.append(f"pub const {a[1]}: usize = {a[2]};")
        elif kind == "alias":
            r.append(f"/// `{a[0]}`: same as `{a[1]}`.")
            ty = cur_type.get(a[1], "usize")
            r.append(f"pub const {a[0]}: {ty} = {a[1]};")
        elif kind == "define":
            r.append(f"/// `{a[0]}`.")
            r.append(f"pub const {a[0]}: c_int = {a[1]};")
            cur_type[a[0]] = "c_int"
        elif kind == "pointer":
            r.append(f"/// `{a[1]}`: the pointer value `({a[0]}*){a[2]}`.")
            r.append(f"pub const {a[1]}: usize = {a[2]};")
        elif kind == "typed":
            r.append(f"/// `{a[1]}`: `({a[0]}){a[2]}`.")
            r.append(f"pub const {a[1]}: {a[0]} = {a[2]};")
        elif kind == "enum-begin":
            enum_ty = a[0] if a and a[0] else "c_int"
            if enum_ty != "c_int":
                r.append(f"/// `{enum_ty}`: a C enum (int-sized).")
                r.append(f"pub type {enum_ty} = c_int;")
        elif kind == "enumerator":
            r.append(f"/// `{a[0]}`.")
            r.append(f"pub const {a[0]}: {enum_ty} = {a[1]};")
            cur_type[a[0]] = enum_ty
        elif kind == "enum-end":
            pass
        elif kind == "callbacks":
            r.append("\n// Callback function types")
            for name, (ret, params) in callbacks.items():
                args = []
                for p in split_params(params):
                    pn, pt = parse_param(p)
                    args.append("..." if pt is None else f"{pn}: {pt}")
                rret = "" if ret == "void" else f" -> {rust_ret(ret)}"
                r.append(f"/// `{name}`: callback type (nullable function pointer).")
                r.append(f"pub type {name} =\n    Option<unsafe extern \"C\" fn({', '.join(args)}){rret}>;")
        elif kind == "typedef":
            r.append(f"/// `{a[0]}`: same as `{a[1]}`.")
            r.append(f"pub type {a[0]} = {a[1]};")
        elif kind == "fnptr":
            r.append(f"/// `{a[1]}`: the predefined `{a[0]}` value `{a[2]}`.")
            r.append(f"pub const {a[1]}: usize = {a[2]};")
    r.append("""
/// Keeps `c_char` and `c_void` used whatever the data holds.
type _Unused = (*const c_char, *const c_void);""")
    return "\n".join(r) + "\n"


def outputs():
    items = load_constants()
    functions, callbacks = load_standard()
    return {
        HEADER: gen_header(items, functions, callbacks),
        FUNCTIONS: gen_functions(functions),
        ABI_RS: gen_rust(items, callbacks),
    }


def rustfmt(text: str) -> str:
    """abi.rs as `cargo fmt` would leave it (rustfmt from the toolchain, if present)."""
    import shutil
    import subprocess

    exe = shutil.which("rustfmt")
    if not exe:
        return text
    res = subprocess.run([exe, "--edition", "2021", "--emit", "stdout", "--quiet"],
                         input=text, capture_output=True, text=True, check=False)
    return res.stdout if res.returncode == 0 and res.stdout else text


def main(argv) -> int:
    if len(argv) >= 2 and argv[1] == "extract":
        extract(Path(argv[2]))
        return 0
    check = "--check" in argv[1:]
    outs = outputs()
    outs[ABI_RS] = rustfmt(outs[ABI_RS])
    stale = []
    for path, text in outs.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        for p in stale:
            print(f"gen.py --check: {p.relative_to(ROOT)} differs from what the generator "
                  "produces: run python3 scripts/mpi-abi/gen.py", file=sys.stderr)
        return 1
    if not check:
        n = len(FUNCTIONS.read_text().splitlines())
        print(f"gen.py: wrote {HEADER.relative_to(ROOT)}, {FUNCTIONS.relative_to(ROOT)} "
              f"({n} functions), {ABI_RS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
