//! C programs against `libmpi_abi.so.1`, run by `tocsin run`: point-to-point data and
//! statuses (contiguous, non-contiguous and, when the datatype constructors exist, vector
//! datatypes), wildcards, MPI_PROC_NULL, nonblocking and persistent requests
//! (Waitall/Waitany/Waitsome/Testall), probes, Sendrecv, buffered sends, truncation,
//! cancel; error classes under MPI_ERRORS_RETURN and the default handler ending the job;
//! communicators, groups, info objects, attributes, Dims_create and Cartesian topologies.
//!
//! The programs are in `tests/c/`; each prints "<name>: all checks passed" on success and
//! exits 1 naming the failed check otherwise. `tocsin` (crate tocsin-cli) must be built in
//! the same profile (`cargo build --release --workspace`); it is built here if missing.
//! Time limits are hang guards only.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`, the directory of this test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The `tocsin` launcher of this profile (built if missing).
fn launcher() -> PathBuf {
    let dir = profile_dir();
    let bin = dir.join("tocsin");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile = dir.file_name().and_then(|s| s.to_str()).unwrap_or("debug");
        let mut cmd = Command::new(cargo);
        cmd.current_dir(crate_dir())
            .args(["build", "-p", "tocsin-cli"]);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        let st = cmd.status().expect("cargo build -p tocsin-cli");
        assert!(st.success(), "cargo build -p tocsin-cli failed");
    }
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// Compiles `tests/c/<name>.c` against the library; returns the executable.
fn compile(name: &str) -> PathBuf {
    let lib = common::library();
    assert!(lib.exists(), "{} not built", lib.display());
    // One directory per build: tests of one process build the same program at once.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("tocsin-mpi-c-{name}-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let link = dir.join("libmpi_abi.so.1");
    std::os::unix::fs::symlink(&lib, &link).expect("symlink libmpi_abi.so.1");
    let exe = dir.join(name);
    let src = crate_dir().join("tests/c").join(format!("{name}.c"));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-O1")
        .arg("-Wall")
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", dir.display()))
        .arg("-l:libmpi_abi.so.1")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "compiling {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe args` on `n` ranks (hang guard: 180 s), with extra environment.
fn run(n: u32, exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "10", "180"])
        .arg(launcher())
        .arg("run")
        .arg("-n")
        .arg(n.to_string())
        .arg("--")
        .arg(exe)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("tocsin run");
    assert_ne!(
        out.status.code(),
        Some(124),
        "{} timed out (hang guard)\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn assert_passed(out: &Output, name: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{name}: all checks passed")),
        "{name} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn p2p_default_mode() {
    let exe = compile("p2p");
    let out = run(2, &exe, &[], &[]);
    assert_passed(&out, "p2p");
}

#[test]
fn p2p_signal_mode() {
    let exe = compile("p2p");
    let out = run(2, &exe, &[], &[("TOCSIN_PROGRESS", "signal")]);
    assert_passed(&out, "p2p");
}

#[test]
fn p2p_block_mode() {
    let exe = compile("p2p");
    let out = run(2, &exe, &[], &[("TOCSIN_PROGRESS", "block")]);
    assert_passed(&out, "p2p");
}

#[test]
fn error_classes_under_errors_return() {
    let exe = compile("errors_p2p");
    let out = run(2, &exe, &[], &[]);
    assert_passed(&out, "errors");
}

#[test]
fn invalid_rank_is_fatal_by_default() {
    let exe = compile("errors_p2p");
    let out = run(2, &exe, &["fatal"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job should fail: {stderr}");
    assert!(
        stderr.contains("MPI_Send") && stderr.contains("MPI_ERR_RANK"),
        "stderr should name MPI_Send and MPI_ERR_RANK:\n{stderr}"
    );
    assert!(
        !stderr.contains("still running after a fatal error"),
        "rank 0 went on after the fatal error:\n{stderr}"
    );
}

#[test]
fn communicators_groups_info_topologies() {
    let exe = compile("comm");
    let out = run(4, &exe, &[], &[]);
    assert_passed(&out, "comm");
}
