//! The OSU Micro-Benchmarks 7.4, unmodified, on tocsin's `libmpi_abi.so.1`: the CI subset of
//! `bench/osu/run.sh`.
//!
//! Builds them with `bench/osu/build.sh tocsin` (which installs tocsin's MPI into
//! `target/mpi` with `scripts/mpi/install.sh` first; the build is cached in `target/osu`),
//! then runs, in `TOCSIN_PROGRESS=poll` and `signal` modes, through `target/mpi/bin/mpiexec`:
//! - point-to-point, 2 ranks: osu_latency, osu_bw, osu_bibw, osu_mbw_mr, osu_multi_lat,
//!   osu_latency_mt (2 sender and 2 receiver threads: validation needs as many of each);
//! - collectives, 4 ranks: osu_barrier, osu_bcast, osu_reduce, osu_allreduce, osu_gather,
//!   osu_alltoall, osu_iallreduce;
//!
//! trimmed (`-i`/`-x`, sizes up to 1 MiB for point-to-point, 256 KiB for collectives), with
//! OSU's validation (`-c`: every size line gets a `Pass`/`Fail` column) wherever the benchmark
//! has it (all but osu_barrier). The reductions use OSU's default, `MPI_SUM` on `MPI_CHAR`,
//! which tocsin accepts as signed 8-bit arithmetic (strictly, MPI defines no arithmetic on
//! `MPI_CHAR`; Open MPI 4.1 fails that validation, so with `TOCSIN_OSU_TEST_IMPL=openmpi`
//! expect those three to fail). Asserts: exit status 0, one line per size (the powers of
//! two from the smallest printed, at most 8, to the maximum asked), every size `Pass`, no
//! `Fail`.
//! Each run is killed (its whole process group) after 120 s.
//!
//! Needs the OSU tarball (`osu-micro-benchmarks-7.4.tar.gz` in `$TOCSIN_SHARED/peers/`,
//! `<repo>/../shared/peers/` or `/work/shared/peers/`, or `OSU_TARBALL`) and the release build
//! of `tocsin` (`target/release/tocsin`, built by `cargo test --workspace --release`): without
//! them the test is skipped with a message, unless `CI` is set: then it fails, as does a
//! failed build.
//!
//! Debugging knob: `TOCSIN_OSU_TEST_IMPL=mpich|openmpi` runs the same checks on Debian's MPICH
//! or Open MPI (built by the same script) to tell an OSU problem from a tocsin one.

mod common;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const PT2PT_MAX: u64 = 1 << 20;
const COLL_MAX: u64 = 1 << 18;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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

/// Skips (returns false after a message) or, under CI, fails.
fn require(ok: bool, why: &str) -> bool {
    if !ok {
        assert!(!in_ci(), "osu: {why}");
        eprintln!("SKIPPED osu: {why}");
    }
    ok
}

fn tarball() -> Option<PathBuf> {
    if let Some(t) = std::env::var_os("OSU_TARBALL") {
        return Some(PathBuf::from(t)).filter(|p| p.is_file());
    }
    let name = "osu-micro-benchmarks-7.4.tar.gz";
    let mut dirs = Vec::new();
    if let Some(s) = std::env::var_os("TOCSIN_SHARED") {
        dirs.push(PathBuf::from(s).join("peers"));
    }
    dirs.push(repo().join("../shared/peers"));
    dirs.push(PathBuf::from("/work/shared/peers"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Runs `cmd` in its own process group; kills the group after `limit`.
/// Returns (exit code or None when killed, stdout, stderr).
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

/// How one benchmark runs and what its output must show.
struct Bench {
    name: &'static str,
    ranks: u32,
    args: &'static [&'static str],
    /// Largest size line expected; None: a single latency line (osu_barrier).
    max_size: Option<u64>,
    validated: bool,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "osu_latency",
        ranks: 2,
        args: &["-m", "1:1048576", "-i", "100", "-x", "10", "-c", "-u", "1"],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_bw",
        ranks: 2,
        args: &[
            "-m",
            "1:1048576",
            "-i",
            "20",
            "-x",
            "5",
            "-W",
            "16",
            "-c",
            "-u",
            "1",
        ],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_bibw",
        ranks: 2,
        args: &[
            "-m",
            "1:1048576",
            "-i",
            "20",
            "-x",
            "5",
            "-W",
            "16",
            "-c",
            "-u",
            "1",
        ],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_mbw_mr",
        ranks: 2,
        args: &[
            "-m",
            "1:1048576",
            "-i",
            "20",
            "-x",
            "5",
            "-W",
            "16",
            "-c",
            "-u",
            "1",
        ],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_multi_lat",
        ranks: 2,
        args: &["-m", "1:1048576", "-i", "100", "-x", "10", "-c", "-u", "1"],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_latency_mt",
        ranks: 2,
        args: &[
            "-m",
            "1:1048576",
            "-i",
            "50",
            "-x",
            "5",
            "-t",
            "2:2",
            "-c",
            "-u",
            "1",
        ],
        max_size: Some(PT2PT_MAX),
        validated: true,
    },
    Bench {
        name: "osu_barrier",
        ranks: 4,
        args: &["-i", "100", "-x", "10"],
        max_size: None,
        validated: false,
    },
    Bench {
        name: "osu_bcast",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "20", "-x", "5", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
    Bench {
        name: "osu_reduce",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "20", "-x", "5", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
    Bench {
        name: "osu_allreduce",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "20", "-x", "5", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
    Bench {
        name: "osu_gather",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "20", "-x", "5", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
    Bench {
        name: "osu_alltoall",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "20", "-x", "5", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
    Bench {
        name: "osu_iallreduce",
        ranks: 4,
        args: &["-m", "1:262144", "-i", "10", "-x", "2", "-c", "-u", "1"],
        max_size: Some(COLL_MAX),
        validated: true,
    },
];

/// Checks one benchmark's output; returns the problems found.
fn check_output(b: &Bench, stdout: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let data: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    if stdout.contains("Fail") {
        problems.push("a validation reports Fail".into());
    }
    let Some(max) = b.max_size else {
        let ok = data.len() == 1
            && data[0]
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v.is_finite() && v > 0.0);
        if !ok {
            problems.push(format!("expected one latency line, got {data:?}"));
        }
        return problems;
    };
    let sizes: Vec<u64> = data
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let Some(&first) = sizes.first() else {
        problems.push("no size line".into());
        return problems;
    };
    if first > 8 || !first.is_power_of_two() {
        problems.push(format!(
            "first size {first}: expected a power of two, at most 8"
        ));
    }
    let expected: Vec<u64> = std::iter::successors(Some(first.max(1)), |s| Some(s * 2))
        .take_while(|&s| s <= max)
        .collect();
    if sizes != expected {
        problems.push(format!("sizes {sizes:?}, expected {expected:?}"));
    }
    for line in &data {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let value_ok = cols
            .get(1)
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v.is_finite() && v >= 0.0);
        if !value_ok {
            problems.push(format!("no value in '{line}'"));
        }
        if b.validated && cols.last() != Some(&"Pass") {
            problems.push(format!("not validated 'Pass': '{line}'"));
        }
    }
    problems
}

#[test]
fn osu_micro_benchmarks_pass_validation() {
    let t_all = Instant::now();
    let impl_ = std::env::var("TOCSIN_OSU_TEST_IMPL").unwrap_or_else(|_| "tocsin".into());
    if !require(
        tarball().is_some(),
        "osu-micro-benchmarks-7.4.tar.gz not found (TOCSIN_SHARED/peers, ../shared/peers or OSU_TARBALL)",
    ) {
        return;
    }
    let profile = profile_dir();
    if impl_ == "tocsin"
        && !require(
            profile.join("tocsin").is_file() && common::library().is_file(),
            &format!(
                "{}/tocsin or libmpi_abi.so not built (cargo build --release --workspace)",
                profile.display()
            ),
        )
    {
        return;
    }

    let t_build = Instant::now();
    let (code, out, err) = run_guarded(
        Command::new("bash")
            .arg(repo().join("bench/osu/build.sh"))
            .arg(&impl_)
            .env("TOCSIN_BUILD_DIR", &profile),
        Duration::from_secs(600),
    );
    assert_eq!(
        code,
        Some(0),
        "bench/osu/build.sh {impl_} failed:\n{out}\n{err}"
    );
    eprintln!(
        "osu: build ({impl_}) {:.1} s: {}",
        t_build.elapsed().as_secs_f64(),
        out.trim()
    );
    let bin = repo().join("target/osu").join(&impl_).join("bin");

    let modes: &[&str] = if impl_ == "tocsin" {
        &["poll", "signal"]
    } else {
        &["-"]
    };
    let mut failures = Vec::new();
    for mode in modes {
        for b in BENCHES {
            let mut cmd = match impl_.as_str() {
                "tocsin" => {
                    let mut c = Command::new(repo().join("target/mpi/bin/mpiexec"));
                    c.env("TOCSIN_PROGRESS", mode);
                    c
                }
                "mpich" => Command::new("mpiexec.mpich"),
                "openmpi" => {
                    let mut c = Command::new("mpiexec.openmpi");
                    c.args(["--oversubscribe", "--mca", "pml", "ob1"])
                        .args(["--mca", "btl", "self,vader"])
                        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
                    c
                }
                other => panic!("TOCSIN_OSU_TEST_IMPL={other}: expected tocsin, mpich or openmpi"),
            };
            cmd.arg("-n")
                .arg(b.ranks.to_string())
                .arg(bin.join(b.name))
                .args(b.args);
            let t0 = Instant::now();
            let (code, stdout, stderr) = run_guarded(&mut cmd, RUN_TIMEOUT);
            let dt = t0.elapsed().as_secs_f64();
            let mut problems = match code {
                Some(0) => Vec::new(),
                Some(c) => vec![format!("exit status {c}")],
                None => vec![format!("killed after {} s", RUN_TIMEOUT.as_secs())],
            };
            problems.extend(check_output(b, &stdout));
            eprintln!(
                "osu: {impl_} {mode} {} ({} ranks) {dt:.1} s: {}",
                b.name,
                b.ranks,
                if problems.is_empty() { "ok" } else { "FAILED" }
            );
            if !problems.is_empty() {
                let tail = |s: &str| {
                    let lines: Vec<&str> = s.lines().collect();
                    lines[lines.len().saturating_sub(15)..].join("\n")
                };
                failures.push(format!(
                    "{impl_} {mode} {} {:?}: {}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
                    b.name,
                    b.args,
                    problems.join("; "),
                    tail(&stdout),
                    tail(&stderr)
                ));
            }
        }
    }
    eprintln!(
        "osu: {} runs in {:.1} s (build included)",
        modes.len() * BENCHES.len(),
        t_all.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} OSU runs failed:\n\n{}",
        failures.len(),
        modes.len() * BENCHES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn output_checker_catches_problems() {
    let lat = &BENCHES[0];
    let mut good = String::from("# OSU MPI Latency Test v7.4\n# Size Latency (us) Validation\n");
    let mut s = 1;
    while s <= PT2PT_MAX {
        good.push_str(&format!("{s:<10}{:>18.2}{:>18}\n", 0.5, "Pass"));
        s *= 2;
    }
    assert!(
        check_output(lat, &good).is_empty(),
        "{:?}",
        check_output(lat, &good)
    );
    let fail = good.replacen("Pass", "Fail", 1);
    assert!(!check_output(lat, &fail).is_empty());
    let short: String = good.lines().take(10).map(|l| format!("{l}\n")).collect();
    assert!(!check_output(lat, &short).is_empty());
    let barrier = &BENCHES[6];
    assert_eq!(barrier.name, "osu_barrier");
    assert!(check_output(barrier, "# Avg Latency(us)\n         3.21\n").is_empty());
    assert!(!check_output(barrier, "# Avg Latency(us)\n").is_empty());
}
