//! `TOCSIN_SHM=posix` leaves nothing in `/dev/shm`, however the job dies: the launcher
//! killed with SIGKILL while rank 0 waits in the bootstrap (the name exists) or while the
//! ranks run, a rank killed during the bootstrap under `mpiexec.hydra` (which then kills
//! the others with SIGKILL), and `mpiexec.hydra` itself killed during the bootstrap.
//!
//! Each test finds the job's own name through rank 0's `/proc/<pid>/fd` or `maps` (other
//! jobs may create names at the same time) and asserts it is gone within seconds. Every
//! child runs under a deadline and is killed past it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{command, run};

const HOLD: &str = env!("CARGO_BIN_EXE_tocsin-hold");
use common::TOCSIN;
const HYDRA: &str = "/usr/bin/mpiexec.hydra";

/// A fresh directory for the rank programs' marker files.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tocsin-posix-shm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Waits up to `limit` for `f` to give a value.
fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_in(dir: &Path, what: &str, rank: u32) -> Option<i32> {
    std::fs::read_to_string(dir.join(format!("{what}.{rank}")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The `/dev/shm/tocsin-*` object process `pid` holds open (during the bootstrap).
fn shm_fd_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .find(|l| l.to_string_lossy().starts_with("/dev/shm/tocsin-"))
}

/// The `/dev/shm/tocsin-*` object process `pid` maps (after the bootstrap: "(deleted)").
fn shm_map_of(pid: i32) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|l| {
        let at = l.find("/dev/shm/tocsin-")?;
        let p = l[at..].trim_end_matches(" (deleted)");
        Some(PathBuf::from(p))
    })
}

fn gone_within(p: &Path, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if !p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !p.exists()
}

fn kill(pid: i32) {
    // SAFETY: SIGKILL to a process this test started (a rank of its own job).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Ends the launcher and whatever ranks are left, if the test failed half-way.
struct Launched {
    launcher: Child,
    dir: PathBuf,
}

impl Launched {
    /// SIGKILLs the launcher and asserts that `name` leaves `/dev/shm` within 10 s (the
    /// reaper unlinks it once rank 0 is gone); `after` says what happened, for the message.
    fn kill_launcher_expect_gone(&mut self, name: &Path, after: &str) {
        self.launcher.kill().expect("SIGKILL to the launcher");
        let _ = self.launcher.wait();
        assert!(
            gone_within(name, Duration::from_secs(10)),
            "{} left in /dev/shm after {after}",
            name.display()
        );
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
        for r in 0..4 {
            if let Some(p) = pid_in(&self.dir, "pid", r) {
                if Path::new(&format!("/proc/{p}")).exists() {
                    kill(p);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn launch(dir: &Path, hold_args: &[&str]) -> Launched {
    let mut cmd = command(TOCSIN);
    cmd.args(["run", "-n", "2", "--", HOLD, "--pid-dir"])
        .arg(dir)
        .args(hold_args)
        .env("TOCSIN_SHM", "posix")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Launched {
        launcher: cmd.spawn().expect("starting tocsin run"),
        dir: dir.to_owned(),
    }
}

#[test]
fn launcher_killed_during_bootstrap_leaves_nothing() {
    let dir = scratch("boot");
    // Rank 1 sleeps before init: rank 0 waits in the bootstrap with the name created.
    let mut job = launch(&dir, &["--act-rank", "1", "--sleep-before-init", "120"]);
    let p0 = within(Duration::from_secs(30), "rank 0's pid", || {
        pid_in(&dir, "pid", 0)
    });
    let name = within(Duration::from_secs(30), "rank 0's /dev/shm object", || {
        shm_fd_of(p0)
    });
    assert!(
        name.exists(),
        "{} should exist during the bootstrap",
        name.display()
    );
    job.kill_launcher_expect_gone(&name, "tocsin run was killed during the bootstrap");
}

#[test]
fn launcher_killed_while_running_leaves_nothing() {
    let dir = scratch("run");
    let mut job = launch(&dir, &["--count", "10", "--hold", "120"]);
    let p0 = within(Duration::from_secs(30), "rank 0 initialized", || {
        pid_in(&dir, "init", 0)
    });
    let name = within(Duration::from_secs(30), "rank 0's segment mapping", || {
        shm_map_of(p0)
    });
    job.kill_launcher_expect_gone(&name, "tocsin run was killed while the job ran");
}

/// Under hydra, rank 1 dies (`how`: hold-program flags) once rank 0 has created the name
/// and waits in the bootstrap; hydra then ends the job.
fn hydra_rank_dies_in_bootstrap(tag: &str, how: &[&str]) {
    if !Path::new(HYDRA).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{HYDRA} missing (install mpich): required in CI"
        );
        eprintln!("skipped: {HYDRA} not installed");
        return;
    }
    let dir = scratch(tag);
    let go = dir.join("go");
    let watcher = {
        let (dir, go) = (dir.clone(), go.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let mut found = None;
            while t.elapsed() < Duration::from_secs(30) && found.is_none() {
                found = pid_in(&dir, "pid", 0).and_then(shm_fd_of);
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = std::fs::write(&go, b"go"); // let rank 1 die in any case
            found
        })
    };
    let mut cmd = command(HYDRA);
    cmd.args(["-n", "3", HOLD, "--pid-dir"])
        .arg(&dir)
        .args(["--act-rank", "1", "--act-when"])
        .arg(&go)
        .args(how)
        .env("TOCSIN_SHM", "posix");
    let out = run(&mut cmd, Duration::from_secs(90));
    let name = watcher.join().expect("watcher").unwrap_or_else(|| {
        panic!(
            "rank 0 never held a /dev/shm object; stderr:\n{}",
            out.stderr
        )
    });
    assert_ne!(
        out.code,
        Some(0),
        "the job should fail: rank 1 died; stdout:\n{}",
        out.stdout
    );
    assert!(
        gone_within(&name, Duration::from_secs(10)),
        "{} left in /dev/shm after rank 1 died in the bootstrap under hydra; stderr:\n{}",
        name.display(),
        out.stderr
    );
    for r in 0..3 {
        if let Some(p) = pid_in(&dir, "pid", r) {
            if Path::new(&format!("/proc/{p}/status")).exists()
                && !std::fs::read_to_string(format!("/proc/{p}/status"))
                    .unwrap_or_default()
                    .contains("zombie")
            {
                kill(p);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hydra_rank_killed_in_bootstrap_leaves_nothing() {
    hydra_rank_dies_in_bootstrap("hydra-kill", &["--kill-before-init"]);
}

#[test]
fn hydra_killed_during_bootstrap_leaves_nothing() {
    if !Path::new(HYDRA).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{HYDRA} missing (install mpich): required in CI"
        );
        eprintln!("skipped: {HYDRA} not installed");
        return;
    }
    let dir = scratch("hydra-killed");
    let mut cmd = command(HYDRA);
    cmd.args(["-n", "2", HOLD, "--pid-dir"])
        .arg(&dir)
        .args(["--act-rank", "1", "--sleep-before-init", "120"])
        .env("TOCSIN_SHM", "posix")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut job = Launched {
        launcher: cmd.spawn().expect("starting mpiexec.hydra"),
        dir: dir.clone(),
    };
    let p0 = within(Duration::from_secs(30), "rank 0's pid", || {
        pid_in(&dir, "pid", 0)
    });
    let name = within(Duration::from_secs(30), "rank 0's /dev/shm object", || {
        shm_fd_of(p0)
    });
    job.kill_launcher_expect_gone(&name, "mpiexec.hydra was killed during the bootstrap");
}
