//! C programs using the collectives, reduction operations and datatype functions of
//! `libmpi_abi.so.1`, run on 4 ranks with `tocsin run` (sources in `tests/c/`):
//! - `coll.c`: every blocking collective with data checked element by element, sizes past
//!   the algorithm thresholds (64 KiB allreduce, 12 KiB bcast), MPI_IN_PLACE forms, a
//!   non-commutative user operation (order checked), MPI_CHAR with MPI_SUM, MINLOC, vector
//!   datatypes in bcast/gather/allgather; in the default progress mode and
//!   `TOCSIN_PROGRESS=signal`;
//! - `icoll.c`: nonblocking collectives overlapped with computation, then waited (skipped
//!   with a message while MPI_Wait is not in the build);
//! - `types.c`: sizes and extents of the standard's examples, names, pack/unpack;
//! - `errors_coll.c`: argument errors end the job under MPI_ERRORS_ARE_FATAL with a message
//!   naming the function and the class (and return the class under MPI_ERRORS_RETURN when
//!   MPI_Comm_set_errhandler is available).
//!
//! Needs `target/release/tocsin` (`cargo build --release --workspace`) and a C compiler;
//! without them the tests are skipped with a message.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`, next to this test's `deps/` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The launcher: target/release/tocsin, or None (skip).
fn launcher(test: &str) -> Option<PathBuf> {
    let cands = [
        profile_dir().join("tocsin"),
        crate_dir().join("../../target/release/tocsin"),
    ];
    let found = cands.into_iter().find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIPPED {test}: no target/release/tocsin (cargo build --release --workspace)");
    }
    found
}

/// Compiles `tests/c/<name>.c` against the library into a scratch directory.
fn build(name: &str) -> Option<PathBuf> {
    let lib = common::library();
    assert!(lib.exists(), "{} not built", lib.display());
    // One directory per build: tests of one process build the same program at once.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tocsin-mpi-ccoll-{name}-{}-{seq}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let link = dir.join("libmpi_abi.so.1");
    std::os::unix::fs::symlink(&lib, &link).expect("symlink libmpi_abi.so.1");
    let exe = dir.join(name);
    let out = match Command::new("cc")
        .arg("-O1")
        .arg("-Wall")
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&exe)
        .arg(&link)
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED {name}: no C compiler ({e})");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "cc {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

fn run(tocsin: &Path, n: u32, exe: &Path, args: &[&str], progress: Option<&str>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(tocsin)
        .arg("run")
        .arg("-n")
        .arg(n.to_string())
        .arg("--")
        .arg(exe)
        .args(args);
    if let Some(p) = progress {
        cmd.env("TOCSIN_PROGRESS", p);
    }
    cmd.output().expect("run tocsin")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn passes(name: &str, n: u32, progress: Option<&str>) {
    let Some(tocsin) = launcher(name) else { return };
    let Some(exe) = build(name) else { return };
    let o = run(&tocsin, n, &exe, &[], progress);
    let (out, err) = text(&o);
    if out.contains("SKIP") {
        eprintln!("SKIPPED {name} ({progress:?}): {out}");
        assert!(o.status.success(), "{name}: {out}\n{err}");
        return;
    }
    assert!(
        o.status.success() && out.contains("all checks passed"),
        "{name} ({progress:?}): status {:?}\n{out}\n{err}",
        o.status
    );
}

#[test]
fn blocking_collectives() {
    passes("coll", 4, None);
}

#[test]
fn blocking_collectives_signal_progress() {
    passes("coll", 4, Some("signal"));
}

#[test]
fn nonblocking_collectives() {
    passes("icoll", 4, None);
}

#[test]
fn nonblocking_collectives_signal_progress() {
    passes("icoll", 4, Some("signal"));
}

#[test]
fn datatype_queries() {
    passes("types", 1, None);
}

#[test]
fn argument_errors() {
    let Some(tocsin) = launcher("errors_coll") else {
        return;
    };
    let Some(exe) = build("errors_coll") else {
        return;
    };
    let cases = [
        ("root", "MPI_Bcast", "MPI_ERR_ROOT", 8),
        ("count", "MPI_Allreduce", "MPI_ERR_COUNT", 2),
        ("type", "MPI_Bcast", "MPI_ERR_TYPE", 3),
        ("op", "MPI_Allreduce", "MPI_ERR_OP", 10),
        ("opdt", "MPI_Allreduce", "MPI_ERR_OP", 10),
        ("longdouble", "MPI_Allreduce", "MPI_ERR_OP", 10),
        ("comm", "MPI_Barrier", "MPI_ERR_COMM", 5),
    ];
    for (case, func, class, code) in cases {
        // Default handler: the job ends nonzero naming the function and the class.
        let o = run(&tocsin, 4, &exe, &[case], None);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{case}: job should fail\n{out}\n{err}");
        assert!(
            err.contains(&format!("{func} (rank")) && err.contains(class),
            "{case}: message should name {func} and {class}:\n{err}"
        );
        // MPI_ERRORS_RETURN, when MPI_Comm_set_errhandler is in the build.
        let o = run(&tocsin, 4, &exe, &[case, "return"], None);
        let (out, err) = text(&o);
        if out.contains("no errhandler") {
            eprintln!(
                "SKIPPED {case} under MPI_ERRORS_RETURN: MPI_Comm_set_errhandler unimplemented"
            );
            continue;
        }
        assert!(
            o.status.success() && out.contains(&format!("rc={code}")),
            "{case}: expected rc={code}:\n{out}\n{err}"
        );
    }
}
