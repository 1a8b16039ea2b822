//! Binary compatibility through the MPI standard ABI: a C program built elsewhere, by MPICH 5's
//! `mpicc_abi` (the PyPI `mpich` 5.0.2 wheel that `scripts/setup.sh` unpacks into
//! `$TOCSIN_MPICH_ABI`, default `~/.cache/tocsin/mpich-abi`), runs unchanged on tocsin's
//! `libmpi_abi.so.1`:
//!
//! - `mpicc_abi` links the program against the wheel's `lib/libmpi_abi.so.1` with a RUNPATH to
//!   it; `LD_LIBRARY_PATH` is searched before RUNPATH, so pointing it at a directory holding
//!   tocsin's library swaps the implementation (checked with `ldd`, and by the program itself
//!   from `/proc/self/maps` and `MPI_Get_library_version`);
//! - the program (`RING_C` below: `MPI_Abi_get_version`, a ring exchange with `MPI_Irecv`,
//!   `MPI_Isend`, `MPI_Waitall` and the statuses, `MPI_Get_count`, `MPI_Sendrecv`,
//!   `MPI_Allreduce` of ints and doubles, `MPI_Barrier`) prints one `OK`/`FAIL` line per part
//!   and `DONE` when every part passed;
//! - control: the same binary on MPICH's own library (the wheel's `mpiexec`), all `OK`;
//! - `mpicc_abi_binary_runs_on_tocsin`: under `tocsin run -n 2` and `-n 3`, every rank prints
//!   every part `OK` and the loaded library is tocsin's;
//! - `tocsin_built_binary_runs_on_mpich`: the reverse, the program built with tocsin's
//!   `include/mpi.h` runs on MPICH's library.
//!
//! Without the wheel the tests are skipped with a message, unless `CI` is set: then they fail.
//! Every run is killed after 60 s.

mod common;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

const RING_C: &str = r#"#define _GNU_SOURCE
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int rank = -1, size = -1;

static void report(const char *part, int ok, int rc) {
    if (ok)
        printf("rank %d: %s OK\n", rank, part);
    else {
        printf("rank %d: %s FAIL (rc %d)\n", rank, part, rc);
        failures++;
    }
    fflush(stdout);
}

/* The path of the libmpi_abi the dynamic loader chose. */
static void print_library_path(void) {
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "/");
        if (p && strstr(p, "libmpi_abi.so")) {
            p[strcspn(p, "\n")] = 0;
            printf("rank %d: library %s\n", rank, p);
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int rc = MPI_Init(&argc, &argv);
    if (rc != MPI_SUCCESS) {
        printf("init FAIL (rc %d)\n", rc);
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    print_library_path();

    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    rc = MPI_Get_library_version(version, &len);
    version[strcspn(version, "\n")] = 0;
    printf("rank %d: library version %s\n", rank, rc == MPI_SUCCESS ? version : "?");

    int major = -1, minor = -1;
    rc = MPI_Abi_get_version(&major, &minor);
    report("abi_version", rc == MPI_SUCCESS && major == 1 && minor == 0, rc);

    /* Ring: every rank sends N ints to the next, receives from the previous. */
    enum { N = 1000, TAG = 42 };
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    int *out = malloc(N * sizeof(int)), *in = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) { out[i] = rank * 100000 + i; in[i] = -1; }
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    MPI_Status sts[2];
    int rc1 = MPI_Irecv(in, N, MPI_INT, MPI_ANY_SOURCE, TAG, MPI_COMM_WORLD, &reqs[0]);
    int rc2 = MPI_Isend(out, N, MPI_INT, next, TAG, MPI_COMM_WORLD, &reqs[1]);
    int rc3 = (rc1 == MPI_SUCCESS && rc2 == MPI_SUCCESS) ? MPI_Waitall(2, reqs, sts) : -1;
    int ok = rc1 == MPI_SUCCESS && rc2 == MPI_SUCCESS && rc3 == MPI_SUCCESS;
    int count = -1;
    if (ok) {
        for (int i = 0; i < N; i++) ok &= in[i] == prev * 100000 + i;
        ok &= sts[0].MPI_SOURCE == prev && sts[0].MPI_TAG == TAG;
        ok &= MPI_Get_count(&sts[0], MPI_INT, &count) == MPI_SUCCESS && count == N;
        ok &= reqs[0] == MPI_REQUEST_NULL && reqs[1] == MPI_REQUEST_NULL;
    }
    report("ring_isend_irecv", ok, rc1 ? rc1 : rc2 ? rc2 : rc3);

    /* The ring the other way round, blocking. */
    double d_out = rank + 0.5, d_in = -1.0;
    MPI_Status st;
    rc = MPI_Sendrecv(&d_out, 1, MPI_DOUBLE, prev, 7, &d_in, 1, MPI_DOUBLE, next, 7,
                      MPI_COMM_WORLD, &st);
    report("ring_sendrecv",
           rc == MPI_SUCCESS && d_in == next + 0.5 && st.MPI_SOURCE == next && st.MPI_TAG == 7, rc);

    /* Allreduce: sum and max of ints, sum of doubles. */
    int mine[2] = {rank + 1, rank * 3}, sum[2] = {0, 0};
    rc = MPI_Allreduce(mine, sum, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    report("allreduce_sum_int",
           rc == MPI_SUCCESS && sum[0] == size * (size + 1) / 2 && sum[1] == 3 * size * (size - 1) / 2, rc);
    int mx = -1;
    rc = MPI_Allreduce(&rank, &mx, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    report("allreduce_max_int", rc == MPI_SUCCESS && mx == size - 1, rc);
    double dv = 0.25 * rank, ds = -1.0;
    rc = MPI_Allreduce(&dv, &ds, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    report("allreduce_sum_double", rc == MPI_SUCCESS && ds == 0.25 * size * (size - 1) / 2, rc);
    int ip = rank;
    rc = MPI_Allreduce(MPI_IN_PLACE, &ip, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    report("allreduce_in_place", rc == MPI_SUCCESS && ip == size * (size - 1) / 2, rc);

    rc = MPI_Barrier(MPI_COMM_WORLD);
    report("barrier", rc == MPI_SUCCESS, rc);

    free(out);
    free(in);
    rc = MPI_Finalize();
    report("finalize", rc == MPI_SUCCESS, rc);
    if (failures == 0) printf("rank %d: DONE\n", rank);
    return failures ? 1 : 0;
}
"#;

const PARTS: &[&str] = &[
    "abi_version",
    "ring_isend_irecv",
    "ring_sendrecv",
    "allreduce_sum_int",
    "allreduce_max_int",
    "allreduce_sum_double",
    "allreduce_in_place",
    "barrier",
    "finalize",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `target/<profile>`, the parent of this test's `deps/` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The unpacked wheel, or None (skip; panics under CI).
fn reference_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("TOCSIN_MPICH_ABI") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/tocsin/mpich-abi"),
    };
    if dir.join("bin/mpicc_abi").exists() && dir.join("lib/libmpi_abi.so.1").exists() {
        return Some(dir);
    }
    let why = format!(
        "{test}: no reference MPI ABI (mpicc_abi, libmpi_abi.so.1) at {} (run scripts/setup.sh)",
        dir.display()
    );
    assert!(!in_ci(), "{why}");
    eprintln!("SKIPPED {why}");
    None
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tocsin-mpi-abi-compat-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `cmd` in its own process group, killed (the group) after `limit`:
/// (exit code, None when killed; stdout; stderr).
fn run_guarded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st.code();
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) on the process group this test created for the child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        code,
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run_guarded(cmd, RUN_TIMEOUT);
    assert_eq!(code, Some(0), "{cmd:?} failed:\n{out}\n{err}");
    out
}

/// A directory holding only `libmpi_abi.so.1` -> tocsin's freshly built library.
fn tocsin_lib_dir(dir: &Path) -> PathBuf {
    let lib = common::library();
    assert!(lib.exists(), "{} not built", lib.display());
    let libdir = dir.join("tocsin-lib");
    std::fs::create_dir_all(&libdir).unwrap();
    for name in ["libmpi_abi.so", "libmpi_abi.so.1"] {
        let _ = std::fs::remove_file(libdir.join(name));
        std::os::unix::fs::symlink(&lib, libdir.join(name)).unwrap();
    }
    libdir
}

/// The shared object `ldd` resolves `libmpi_abi.so.1` to, with `LD_LIBRARY_PATH=ld_path`.
fn resolved_library(exe: &Path, ld_path: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new("ldd");
    cmd.arg(exe).env_remove("LD_LIBRARY_PATH");
    if let Some(p) = ld_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = ok(&mut cmd);
    let line = out
        .lines()
        .find(|l| l.contains("libmpi_abi.so.1 =>"))
        .unwrap_or_else(|| panic!("ldd {}: no libmpi_abi.so.1:\n{out}", exe.display()));
    let path = line.split("=>").nth(1).unwrap().split(" (").next().unwrap();
    std::fs::canonicalize(path.trim()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rank's report: all parts OK, DONE, and the library path and version as expected.
fn check_ranks(out: &str, n: usize, lib_dir_part: &str, version_part: &str) {
    let mut problems = Vec::new();
    for r in 0..n {
        for part in PARTS {
            let want = format!("rank {r}: {part} OK");
            if !out.lines().any(|l| l == want) {
                problems.push(want);
            }
        }
        if !out.lines().any(|l| l == format!("rank {r}: DONE")) {
            problems.push(format!("rank {r}: DONE"));
        }
        let lib = format!("rank {r}: library ");
        if !out
            .lines()
            .any(|l| l.starts_with(&lib) && l.contains(lib_dir_part))
        {
            problems.push(format!("{lib}…{lib_dir_part}…"));
        }
        let ver = format!("rank {r}: library version ");
        if !out
            .lines()
            .any(|l| l.starts_with(&ver) && l.contains(version_part))
        {
            problems.push(format!("{ver}…{version_part}…"));
        }
    }
    assert!(
        problems.is_empty(),
        "missing from the output: {problems:#?}\n--- output:\n{out}"
    );
    assert!(!out.contains("FAIL"), "a part failed:\n{out}");
}

/// Builds the ring program with the wheel's `mpicc_abi`; returns the executable.
fn build_with_mpicc_abi(reference: &Path, dir: &Path) -> PathBuf {
    let src = dir.join("ring.c");
    std::fs::write(&src, RING_C).unwrap();
    let exe = dir.join("ring-mpich-abi");
    ok(Command::new("bash")
        .arg(reference.join("bin/mpicc_abi"))
        .args(["-std=c99", "-O1", "-Wall", "-Werror"])
        .arg(&src)
        .arg("-o")
        .arg(&exe));
    exe
}

#[test]
fn mpicc_abi_binary_runs_on_tocsin() {
    let Some(reference) = reference_dir("mpicc_abi_binary_runs_on_tocsin") else {
        return;
    };
    let tocsin = profile_dir().join("tocsin");
    if !tocsin.exists() {
        let why = format!(
            "mpicc_abi_binary_runs_on_tocsin: {} not built (cargo build --release --workspace)",
            tocsin.display()
        );
        assert!(!in_ci(), "{why}");
        eprintln!("SKIPPED {why}");
        return;
    }
    let dir = scratch("mpicc-abi");
    let exe = build_with_mpicc_abi(&reference, &dir);
    let wheel_lib = std::fs::canonicalize(reference.join("lib/libmpi_abi.so.1")).unwrap();
    let ours = tocsin_lib_dir(&dir);
    let tocsin_lib = std::fs::canonicalize(ours.join("libmpi_abi.so.1")).unwrap();

    // Built elsewhere: without LD_LIBRARY_PATH the program loads MPICH's library (RUNPATH) ...
    assert_eq!(resolved_library(&exe, None), wheel_lib);
    // ... and LD_LIBRARY_PATH (searched before RUNPATH) swaps in tocsin's.
    assert_eq!(resolved_library(&exe, Some(&ours)), tocsin_lib);

    // Control: the program is right on MPICH itself.
    let out = ok(Command::new(reference.join("bin/mpiexec"))
        .args(["-n", "2"])
        .arg(&exe)
        .env_remove("LD_LIBRARY_PATH"));
    check_ranks(&out, 2, "mpich-abi", "MPICH");

    for n in [2usize, 3] {
        let mut cmd = Command::new(&tocsin);
        cmd.args(["run", "-n", &n.to_string(), "--"])
            .arg(&exe)
            .env("LD_LIBRARY_PATH", &ours);
        let (code, out, err) = run_guarded(&mut cmd, RUN_TIMEOUT);
        eprintln!("--- tocsin run -n {n}: exit {code:?}\n{out}{err}");
        check_ranks(
            &out,
            n,
            &tocsin_lib.parent().unwrap().to_string_lossy(),
            "tocsin-mpi",
        );
        assert_eq!(code, Some(0), "tocsin run -n {n}: exit status\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tocsin_built_binary_runs_on_mpich() {
    let Some(reference) = reference_dir("tocsin_built_binary_runs_on_mpich") else {
        return;
    };
    let dir = scratch("reverse");
    let ours = tocsin_lib_dir(&dir);
    let src = dir.join("ring.c");
    std::fs::write(&src, RING_C).unwrap();
    let exe = dir.join("ring-tocsin");
    // As tocsin's mpicc, without its rpath: the run picks the library with LD_LIBRARY_PATH.
    ok(Command::new("cc")
        .args(["-std=c99", "-O1", "-Wall", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&ours)
        .arg("-lmpi_abi"));
    let wheel_lib_dir = reference.join("lib");
    assert_eq!(
        resolved_library(&exe, Some(&wheel_lib_dir)),
        std::fs::canonicalize(wheel_lib_dir.join("libmpi_abi.so.1")).unwrap()
    );
    let out = ok(Command::new(reference.join("bin/mpiexec"))
        .args(["-n", "2"])
        .arg(&exe)
        .env("LD_LIBRARY_PATH", &wheel_lib_dir));
    check_ranks(&out, 2, "mpich-abi", "MPICH");
    let _ = std::fs::remove_dir_all(&dir);
}
