//! The MPI standard ABI surface of `libmpi_abi.so.1`:
//! - every function of `abi/functions.txt` (and `abi/extra-exports.txt`) is exported as `MPI_`
//!   and `PMPI_`, and the soname is `libmpi_abi.so.1`;
//! - `include/mpi.h` compiles (C99 pedantic, C++) and agrees with `abi/functions.txt`;
//! - `include/mpi.h` agrees with the reference header (`include/mpi_abi.h` of the PyPI mpich
//!   5.0.2 wheel, unpacked by `scripts/setup.sh` into `$TOCSIN_MPICH_ABI`, default
//!   `~/.cache/tocsin/mpich-abi`): same functions and prototypes, same value of every constant,
//!   save the exceptions listed in `abi/DIFFERENCES.md`;
//! - a C program built with `include/mpi.h` (and one built with the reference header) links
//!   against the library, gets ABI version 1.0 and 55 from an unimplemented function, with a
//!   one-time message;
//! - `scripts/mpi-abi/gen.py --check`: the committed generated files are up to date.
//!
//! Without the wheel (or python3 + pympistandard) the comparisons are skipped with a message,
//! unless `CI` is set: then they fail.

use std::collections::{BTreeMap, BTreeSet};
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/libmpi_abi.so`, next to this test's `deps/` directory.
fn library() -> PathBuf {
    common::library()
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The unpacked reference wheel, or None (skip; panics under CI).
fn reference_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("TOCSIN_MPICH_ABI") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/tocsin/mpich-abi"),
    };
    if dir.join("include/mpi_abi.h").exists() {
        return Some(dir);
    }
    let why = format!(
        "{test}: no reference MPI ABI at {} (run scripts/setup.sh)",
        dir.display()
    );
    assert!(!in_ci(), "{why}");
    eprintln!("SKIPPED {why}");
    None
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tocsin-mpi-abi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Function names of a prototype list file (`abi/functions.txt` format).
fn listed(file: &str) -> Vec<String> {
    read(&crate_dir().join(file))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let head = &l[..l.find('(').expect("(")];
            head.rsplit(' ').next().expect("name").to_string()
        })
        .collect()
}

/// The names that may differ between `include/mpi.h` and the reference header: every
/// line `- \`NAME\`` of `abi/DIFFERENCES.md`.
fn exceptions() -> BTreeSet<String> {
    read(&crate_dir().join("abi/DIFFERENCES.md"))
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// One parameter, normalized: no name, `[]` as `*`, no spaces (`const int*`, `int*[3]`).
fn norm_param(p: &str) -> String {
    let p = p.trim();
    if p == "..." {
        return p.into();
    }
    let (constant, s) = match p.strip_prefix("const ") {
        Some(s) => (true, s.trim_start()),
        None => (false, p),
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let base_end = s.find(|c: char| !ident(c)).unwrap_or(s.len());
    let rest = &s[base_end..];
    let stars = rest.matches('*').count();
    let rest = rest.replace('*', "");
    let rest = rest.trim();
    let name_end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
    let dims: Vec<&str> = rest[name_end..].split('[').skip(1).collect();
    let mut out = format!(
        "{}{}{}",
        if constant { "const " } else { "" },
        &s[..base_end],
        "*".repeat(stars + usize::from(!dims.is_empty()))
    );
    for d in dims.iter().skip(1) {
        out.push('[');
        out.push_str(d.trim_end_matches(']').trim());
        out.push(']');
    }
    out
}

/// Function prototypes of a header: name -> normalized `ret(params)`. Stops at the opt-in
/// `TOCSIN_MPI_FINT` block (not part of the ABI).
fn prototypes(header: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in header.lines() {
        if line.starts_with("#if defined(TOCSIN_MPI_FINT)") {
            break;
        }
        let line = match line.find("/*") {
            Some(i) => line[..i].trim(),
            None => line.trim(),
        };
        if line.starts_with("typedef") || line.starts_with('#') || !line.ends_with(");") {
            continue;
        }
        let Some(open) = line.find('(') else { continue };
        let Some((ret, name)) = line[..open].trim().rsplit_once(' ') else {
            continue;
        };
        if !(name.starts_with("MPI") || name.starts_with("PMPI")) {
            continue;
        }
        let body = &line[open + 1..line.len() - 2];
        let params: Vec<String> = if body.trim() == "void" {
            Vec::new()
        } else {
            body.split(',').map(norm_param).collect()
        };
        out.insert(
            name.to_string(),
            format!("{}({})", ret.trim(), params.join(",")),
        );
    }
    out
}

/// Names of the object-like `#define MPI…` macros and the `MPI…` enumerators of a header.
fn constant_names(header: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in header.lines() {
        if line.starts_with("#if defined(TOCSIN_MPI_FINT)") {
            break;
        }
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("#define ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap_or("");
            if name.starts_with("MPI") && !name.contains('(') && it.next().is_some() {
                out.insert(name.to_string());
            }
        } else if t.starts_with("MPI") && t.contains('=') && !t.contains('(') {
            out.insert(
                t.split(|c: char| c.is_whitespace() || c == '=')
                    .next()
                    .unwrap()
                    .into(),
            );
        }
    }
    out
}

#[test]
fn exports_every_function_and_the_soname() {
    let lib = library();
    let out = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib));
    let symbols: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
            (kind == "T").then(|| name.to_string())
        })
        .collect();
    let functions = listed("abi/functions.txt");
    assert!(
        functions.len() >= 662,
        "abi/functions.txt: {}",
        functions.len()
    );
    let mut missing = Vec::new();
    for name in functions
        .iter()
        .chain(listed("abi/extra-exports.txt").iter())
    {
        for sym in [name.clone(), format!("P{name}")] {
            if !symbols.contains(&sym) {
                missing.push(sym);
            }
        }
    }
    assert!(missing.is_empty(), "not exported: {missing:?}");

    let out = run(Command::new("readelf").arg("-d").arg(&lib));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains("Library soname: [libmpi_abi.so.1]"),
        "soname: {dynamic}"
    );
}

#[test]
fn header_declares_exactly_functions_txt() {
    let header = read(&crate_dir().join("include/mpi.h"));
    let protos = prototypes(&header);
    let functions: BTreeSet<String> = listed("abi/functions.txt").into_iter().collect();
    let mpi: BTreeSet<String> = protos
        .keys()
        .filter(|n| n.starts_with("MPI"))
        .cloned()
        .collect();
    let pmpi: BTreeSet<String> = protos
        .keys()
        .filter_map(|n| n.strip_prefix('P'))
        .map(str::to_string)
        .collect();
    assert_eq!(
        mpi, functions,
        "MPI_ prototypes of mpi.h vs abi/functions.txt"
    );
    assert_eq!(
        pmpi, functions,
        "PMPI_ prototypes of mpi.h vs abi/functions.txt"
    );
    for line in read(&crate_dir().join("abi/functions.txt")).lines() {
        assert!(header.contains(line), "mpi.h lacks '{line}'");
    }
}

#[test]
fn header_compiles_as_c99_and_cxx() {
    let dir = scratch("compile");
    let include = crate_dir().join("include");
    let src = "#include <mpi.h>\nint main(void) { MPI_Status s = {0, 0, 0, {0}}; \
               MPI_Comm c = MPI_COMM_WORLD; (void)c; return s.MPI_SOURCE + MPI_SUCCESS; }\n";
    std::fs::write(dir.join("t.c"), src).unwrap();
    std::fs::write(dir.join("t.cpp"), src).unwrap();
    for fint in [false, true] {
        let mut cc = Command::new("cc");
        cc.args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-c",
            "-o",
        ])
        .arg(dir.join("t.o"))
        .arg("-I")
        .arg(&include)
        .arg(dir.join("t.c"));
        if fint {
            cc.arg("-DTOCSIN_MPI_FINT");
        }
        run(&mut cc);
        let mut cxx = Command::new("c++");
        cxx.args(["-Wall", "-Wextra", "-pedantic", "-Werror", "-c", "-o"])
            .arg(dir.join("t.o"))
            .arg("-I")
            .arg(&include)
            .arg(dir.join("t.cpp"));
        if fint {
            cxx.arg("-DTOCSIN_MPI_FINT");
        }
        run(&mut cxx);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_agrees_with_the_reference_prototypes() {
    let Some(reference) = reference_dir("header_agrees_with_the_reference_prototypes") else {
        return;
    };
    let ours = prototypes(&read(&crate_dir().join("include/mpi.h")));
    let theirs = prototypes(&read(&reference.join("include/mpi_abi.h")));
    let allowed = exceptions();
    let mut problems = Vec::new();
    for name in ours.keys().chain(theirs.keys()).collect::<BTreeSet<_>>() {
        if allowed.contains(name) {
            continue;
        }
        match (ours.get(name), theirs.get(name)) {
            (Some(a), Some(b)) if a != b => problems.push(format!("{name}: {a} vs {b}")),
            (Some(_), None) => problems.push(format!("{name}: only in mpi.h")),
            (None, Some(_)) => problems.push(format!("{name}: only in the reference")),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "mpi.h vs reference mpi_abi.h (allowed exceptions: abi/DIFFERENCES.md):\n{}",
        problems.join("\n")
    );
    let n = ours.keys().filter(|n| n.starts_with("MPI_")).count();
    assert_eq!(n, 662, "MPI_ functions of mpi.h");
}

/// Values of `names` printed by a C program built against `header_dir/mpi.h`.
fn constant_values(dir: &Path, header_dir: &Path, names: &BTreeSet<String>) -> String {
    let mut src = String::from(
        "#include <stdio.h>\n#include <stdint.h>\n#include <mpi.h>\nint main(void) {\n",
    );
    for sizeof in [
        "MPI_Status",
        "MPI_Aint",
        "MPI_Offset",
        "MPI_Count",
        "MPI_Comm",
    ] {
        src.push_str(&format!(
            "  printf(\"sizeof {sizeof} %d\\n\", (int)sizeof({sizeof}));\n"
        ));
    }
    for name in names {
        src.push_str(&format!(
            "  printf(\"{name} %lld\\n\", (long long)(intptr_t)({name}));\n"
        ));
    }
    src.push_str("  return 0;\n}\n");
    let c = dir.join("values.c");
    let exe = dir.join("values");
    std::fs::write(&c, src).unwrap();
    run(Command::new("cc")
        .arg("-I")
        .arg(header_dir)
        .arg(&c)
        .arg("-o")
        .arg(&exe));
    String::from_utf8(run(&mut Command::new(&exe)).stdout).unwrap()
}

#[test]
fn header_agrees_with_the_reference_constants() {
    let Some(reference) = reference_dir("header_agrees_with_the_reference_constants") else {
        return;
    };
    let ours_text = read(&crate_dir().join("include/mpi.h"));
    let theirs_text = read(&reference.join("include/mpi_abi.h"));
    let ours = constant_names(&ours_text);
    let theirs = constant_names(&theirs_text);
    let allowed = exceptions();
    let only: Vec<_> = ours
        .symmetric_difference(&theirs)
        .filter(|n| !allowed.contains(*n))
        .collect();
    assert!(only.is_empty(), "constants in one header only: {only:?}");
    assert!(ours.len() > 300, "only {} constants found", ours.len());

    let common: BTreeSet<String> = ours.intersection(&theirs).cloned().collect();
    let dir = scratch("values");
    let ref_dir = dir.join("ref");
    std::fs::create_dir_all(&ref_dir).unwrap();
    std::fs::write(ref_dir.join("mpi.h"), &theirs_text).unwrap();
    let a = constant_values(&dir, &crate_dir().join("include"), &common);
    let b = constant_values(&dir, &ref_dir, &common);
    let diff: Vec<_> = a
        .lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .filter(|(x, _)| !allowed.contains(x.split(' ').next().unwrap_or("")))
        .collect();
    assert!(
        diff.is_empty(),
        "values differ (mpi.h, reference): {diff:?}"
    );
    assert!(a.contains("sizeof MPI_Status 32"), "{a}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds `prog.c` against `header_dir/mpi.h`, links it to the library, runs it.
fn run_c_program(dir: &Path, header_dir: &Path) -> std::process::Output {
    let lib = library();
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    for name in ["libmpi_abi.so", "libmpi_abi.so.1"] {
        let _ = std::fs::remove_file(libdir.join(name));
        std::os::unix::fs::symlink(&lib, libdir.join(name)).unwrap();
    }
    let src = r#"#include <stdio.h>
#include <mpi.h>
int main(void) {
    int major = -1, minor = -1, version = -1, subversion = -1;
    int rc = MPI_Abi_get_version(&major, &minor);
    printf("abi %d.%d rc %d\n", major, minor, rc);
    rc = MPI_Get_version(&version, &subversion);
    printf("mpi %d.%d rc %d\n", version, subversion, rc);
    MPI_Comm ic;
    printf("unimplemented %d\n", MPI_Comm_join(-1, &ic));
    printf("unimplemented %d\n", MPI_Comm_join(-2, &ic));
    printf("pmpi %d\n", PMPI_Abi_get_version(&major, &minor));
    return 0;
}
"#;
    let c = dir.join("prog.c");
    let exe = dir.join("prog");
    std::fs::write(&c, src).unwrap();
    run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror"])
        .arg("-I")
        .arg(header_dir)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&libdir)
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lmpi_abi"));
    let needed = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(
        String::from_utf8_lossy(&needed.stdout).contains("[libmpi_abi.so.1]"),
        "the program does not need libmpi_abi.so.1"
    );
    run(&mut Command::new(&exe))
}

fn check_c_program_output(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout,
        "abi 1.0 rc 0\nmpi 5.0 rc 0\nunimplemented 55\nunimplemented 55\npmpi 0\n"
    );
    let message =
        "tocsin-mpi: MPI_Comm_join is not implemented: returning MPI_ERR_UNSUPPORTED_OPERATION";
    assert_eq!(stderr.matches(message).count(), 1, "stderr: {stderr}");
}

#[test]
fn c_program_links_and_runs() {
    let dir = scratch("prog");
    let out = run_c_program(&dir, &crate_dir().join("include"));
    check_c_program_output(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_program_built_with_the_reference_header_runs() {
    let Some(reference) = reference_dir("c_program_built_with_the_reference_header_runs") else {
        return;
    };
    let dir = scratch("refprog");
    let hdr = dir.join("ref");
    std::fs::create_dir_all(&hdr).unwrap();
    std::fs::copy(reference.join("include/mpi_abi.h"), hdr.join("mpi.h")).unwrap();
    let out = run_c_program(&dir, &hdr);
    check_c_program_output(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generated_files_are_up_to_date() {
    let have = Command::new("python3")
        .args(["-c", "import pympistandard"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        let why =
            "generated_files_are_up_to_date: needs python3 with pympistandard (scripts/setup.sh)";
        assert!(!in_ci(), "{why}");
        eprintln!("SKIPPED {why}");
        return;
    }
    let script = crate_dir().join("../../scripts/mpi-abi/gen.py");
    run(Command::new("python3").arg(script).arg("--check"));
}

#[test]
fn rust_types_and_constants() {
    use mpi_abi::abi::*;
    assert_eq!(std::mem::size_of::<MPI_Status>(), 32);
    assert_eq!(std::mem::align_of::<MPI_Status>(), 4);
    assert_eq!(
        std::mem::size_of::<MPI_Comm>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<MPI_User_function>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(MPI_COMM_WORLD, 0x101);
    assert_eq!(MPI_REQUEST_NULL, 0x180);
    assert_eq!(MPI_INT64_T, 0x258);
    assert_eq!(MPI_ERR_UNSUPPORTED_OPERATION, 55);
    assert_eq!(MPI_ERR_LASTCODE, 16383);
    assert_eq!((MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_PROC_NULL), (-1, -2, -3));
    assert_eq!(MPI_UNDEFINED, -32766);
    assert_eq!(MPI_THREAD_MULTIPLE, 4096);
    assert_eq!(MPI_IN_PLACE, 1);
    assert_eq!(MPI_DISPLACEMENT_CURRENT, -1);
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid, writable ints.
    let rc = unsafe { mpi_abi::exports::MPI_Abi_get_version(&mut major, &mut minor) };
    assert_eq!((rc, major, minor), (MPI_SUCCESS, 1, 0));
    // SAFETY: an unimplemented function: the stub reads none of its arguments.
    let mut ic: MPI_Comm = std::ptr::null_mut();
    let rc = unsafe { mpi_abi::exports::MPI_Comm_join(-1, &mut ic) };
    assert_eq!(rc, MPI_ERR_UNSUPPORTED_OPERATION);
}
