//! The job runner every integration test file uses: start a command (a launcher and its
//! ranks, or one program) in its own process group with a clean environment, collect its
//! output, and end it at a deadline — a hang guard, never a performance target.
//!
//! API (include with `mod common;` from a file in `tests/`):
//! - [`command`]`(program)`: a [`Command`] without the test process's `TOCSIN_*` and `PMI_*`
//!   variables (set the job's own afterwards), stdin `/dev/null`.
//! - [`tocsin_run`]`(n, program)`: `tocsin run -n N -- PROGRAM` as such a command; add the
//!   program's arguments with `.args(…)`.
//! - [`run`]`(&mut cmd, deadline)` → [`Outcome`]: runs to completion; a job still running
//!   at the deadline has its whole process group killed and the test panics with its
//!   output (`HANG: …`).
//! - [`Job::spawn`]`(&mut cmd)` for tests that act while the job runs ([`Job::wait_line`],
//!   [`Job::stdout_lines`], [`Job::pid`]), then [`Job::wait`]`(deadline)` → [`Outcome`], which
//!   reports a timeout in [`Outcome::timed_out`] instead of panicking. Dropping a `Job`
//!   kills its group.
//! - [`serial`]: a lock that makes the jobs of one test binary run one at a time (take it
//!   around a job; it is not taken by `run`/`Job`, so a test may hold it across several
//!   jobs).
//! - [`Outcome`]: exit code or signal, stdout, stderr, elapsed time, whether processes of
//!   the group outlived the launcher ([`Outcome::stragglers`]); [`Outcome::report`] for
//!   assertion messages, [`Outcome::results`] for `RESULT name k=v…` lines,
//!   [`Outcome::assert_ranks_ok`] for the test programs' `ok CASE rank R/N` lines.
//!
//! A new test file for a rank program (here a hypothetical `tocsin-faultrank CASE`):
//!
//! ```text
//! mod common;
//! use common::{run, serial, tocsin_run};
//!
//! #[test]
//! fn a_case() {
//!     let _one = serial();
//!     let mut cmd = tocsin_run(2, env!("CARGO_BIN_EXE_tocsin-faultrank"));
//!     cmd.arg("a-case").env("TOCSIN_PROGRESS", "signal");
//!     let o = run(&mut cmd, std::time::Duration::from_secs(120));
//!     o.assert_ranks_ok(2, "a-case"); // or o.code, o.stderr, o.results("name"), …
//! }
//! ```
//!
//! - [`Cluster::start`]`(name)`: a test cluster started by `scripts/cluster/NAME.sh start`
//!   (`slurm`: two Slurm nodes; `netns`: two namespace hosts), stopped by `… stop` (which
//!   kills the daemons it recorded, by pid) when the guard drops, even if the test panics;
//!   `None` (the test skips, saying why) if it cannot start here, unless [`ci`] (then it
//!   panics). [`script`] gives the path of a repository script.
//!
//! A file uses only part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `tocsin` command built with the tests.
pub const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// Serializes the jobs of one test binary (see the module doc).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command for `program` with stdin from `/dev/null` and without the environment variables
/// of the test process that would change what a job does (`TOCSIN_*`, `PMI_*`).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("TOCSIN_") || k.starts_with("PMI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `tocsin run -n n -- program` (add the program's arguments with `.args(…)`).
pub fn tocsin_run(n: u32, program: &str) -> Command {
    let mut cmd = command(TOCSIN);
    cmd.args(["run", "-n", &n.to_string(), "--", program]);
    cmd
}

/// Runs `cmd` to completion; at `deadline` kills its process group and panics with its
/// output.
pub fn run(cmd: &mut Command, deadline: Duration) -> Outcome {
    let o = Job::spawn(cmd).wait(deadline);
    assert!(
        !o.timed_out,
        "HANG: the job did not finish within {deadline:?}\n{}",
        o.report()
    );
    o
}

/// A running job: the command in its own process group, its output collected as it comes.
pub struct Job {
    what: String,
    child: Child,
    start: Instant,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    reaped: bool,
}

/// How a job ended.
#[derive(Debug)]
pub struct Outcome {
    /// The command line.
    pub what: String,
    /// Exit code, or `None` if killed by a signal (see `signal`).
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Killed at the deadline.
    pub timed_out: bool,
    /// Its standard output, as written.
    pub stdout: String,
    /// Its standard error, as written.
    pub stderr: String,
    /// From start to end.
    pub elapsed: Duration,
    /// Processes of the job's group still alive 2 s after the launcher exited (then killed).
    pub stragglers: bool,
}

impl Outcome {
    /// Exit code 0 before the deadline.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Everything known about the job, for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "job: {}\nexit code {:?}, signal {:?}, timed out: {}, {:.1} s, stragglers: {}\n\
             --- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            self.signal,
            self.timed_out,
            self.elapsed.as_secs_f64(),
            self.stragglers,
            self.stdout,
            self.stderr
        )
    }

    /// The `RESULT <name> k=v...` lines of stdout, as maps.
    pub fn results(&self, name: &str) -> Vec<HashMap<String, String>> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                (it.next()? == name).then(|| {
                    it.filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect()
                })
            })
            .collect()
    }

    /// The one `RESULT <name>` line (panics if there is not exactly one).
    pub fn one(&self, name: &str) -> HashMap<String, String> {
        let mut v = self.results(name);
        assert_eq!(
            v.len(),
            1,
            "expected one RESULT {name} line\n{}",
            self.report()
        );
        v.pop().unwrap()
    }

    /// Asserts that the job succeeded, left no straggler, and that each of its `n` ranks
    /// printed `ok CASE rank R/N` (the test programs' success line).
    pub fn assert_ranks_ok(&self, n: u32, case: &str) {
        assert!(self.success(), "the job failed\n{}", self.report());
        assert!(
            !self.stragglers,
            "ranks outlived the launcher\n{}",
            self.report()
        );
        for r in 0..n {
            let want = format!("ok {case} rank {r}/{n}");
            assert!(
                self.stdout
                    .lines()
                    .any(|l| l.trim_end().ends_with(&want) || l.contains(&format!("{want} "))),
                "rank {r} did not print {want:?}\n{}",
                self.report()
            );
        }
    }
}

fn reader(mut src: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => sink.lock().unwrap().extend_from_slice(&buf[..k]),
            }
        }
    })
}

fn text(v: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&v.lock().unwrap()).into_owned()
}

impl Job {
    /// Starts `cmd` in a new process group, stdout and stderr collected.
    pub fn spawn(cmd: &mut Command) -> Job {
        let what = format!("{cmd:?}");
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            reader(child.stdout.take().unwrap(), out.clone()),
            reader(child.stderr.take().unwrap(), err.clone()),
        ];
        Job {
            what,
            child,
            start: Instant::now(),
            out,
            err,
            readers,
            reaped: false,
        }
    }

    /// The pid of the started process (also its process group id).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the started process has exited (without reaping it, so its process group id
    /// stays reserved and can still be signalled safely).
    pub fn exited(&self) -> bool {
        // SAFETY: waitid on our own child with WNOWAIT only reads its state.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() != 0
        }
    }

    fn kill_group(&self) {
        // SAFETY: plain kill(2) on our own, not yet reaped, process group.
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
        }
    }

    /// Live (not zombie) processes of the job's group other than the started one.
    fn group_members(&self) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != self.pid())
            .filter(|&pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the command name: state, ppid, pgrp, …
                let rest: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, r)| r)
                    .split_whitespace()
                    .collect();
                rest.len() > 2 && rest[0] != "Z" && rest[2].parse() == Ok(self.pid())
            })
            .collect()
    }

    /// The complete lines of stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let t = text(&self.out);
        let complete = t.rfind('\n').map_or("", |i| &t[..i]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Waits until a complete stdout line satisfies `f`; returns it, or `None` at the
    /// timeout or when the job ended first.
    pub fn wait_line(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.stdout_lines().into_iter().find(|l| f(l)) {
                return Some(l);
            }
            if t0.elapsed() > timeout || self.exited() {
                // One last look: the line may have been read after the exit.
                std::thread::sleep(Duration::from_millis(50));
                return self.stdout_lines().into_iter().find(|l| f(l));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the job to end, at most `deadline` after its start; kills the whole group at
    /// the deadline (reported in [`Outcome::timed_out`]) and any straggler after the end.
    pub fn wait(mut self, deadline: Duration) -> Outcome {
        let mut timed_out = false;
        while !self.exited() {
            if self.start.elapsed() > deadline {
                timed_out = true;
                self.kill_group();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The launcher is gone (or killed): any rank left in its group is a straggler.
        let mut stragglers = false;
        if !timed_out {
            let t0 = Instant::now();
            while !self.group_members().is_empty() && t0.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(20));
            }
            stragglers = !self.group_members().is_empty();
        }
        self.kill_group();
        let st = self.child.wait().expect("wait for the job");
        self.reaped = true;
        let elapsed = self.start.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Outcome {
            what: self.what.clone(),
            code: st.code(),
            signal: st.signal(),
            timed_out,
            stdout: text(&self.out),
            stderr: text(&self.err),
            elapsed,
            stragglers,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // A panicking test must not leave a job behind.
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// The names in `/dev/shm` that tocsin creates (`tocsin-…`), to compare before and after a
/// job: nothing may be left behind.
pub fn dev_shm_tocsin() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tocsin-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the tests run in CI (`CI` set, to anything, as the other tests read it; `.ci/run`
/// sets it): a test that cannot start the component it needs (a cluster, a launcher) then
/// fails instead of skipping.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The path of `rel` in the repository (e.g. `scripts/cluster/nsexec`).
pub fn script(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `program` found on `PATH` (or in /usr/sbin, /sbin).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Skips (returns `None` after printing why) or, under [`ci`], fails.
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    assert!(!ci(), "CI is set, so this must work here: {why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// A running test cluster (`scripts/cluster/NAME.sh`); stopped when dropped.
pub struct Cluster {
    name: String,
    script: std::path::PathBuf,
    /// Holds an exclusive `flock` on `/tmp/tocsin-cluster-NAME.lock` while the cluster runs,
    /// so that test runs of several checkouts take turns (the clusters use fixed paths,
    /// ports and addresses).
    _lock: std::fs::File,
}

impl Cluster {
    /// Runs `scripts/cluster/NAME.sh start` (at most 120 s). `None` if it cannot start here
    /// (not root, packages missing, or the script failed: its output is printed), unless
    /// [`ci`], where that panics.
    pub fn start(name: &str) -> Option<Cluster> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip_or_fail(&format!(
                "the {name} test cluster needs root (scripts/cluster/{name}.sh)"
            ));
        }
        let script = script(&format!("scripts/cluster/{name}.sh"));
        let lock_path = format!("/tmp/tocsin-cluster-{name}.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("cannot open {lock_path}: {e}"));
        let t0 = Instant::now();
        // SAFETY: flock on a descriptor we own; blocks until the other holder releases it.
        while unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "cannot lock {lock_path}"
            );
        }
        let mut cmd = command("bash");
        cmd.arg(&script).arg("start");
        let o = Job::spawn(&mut cmd).wait(Duration::from_secs(120));
        let c = Cluster {
            name: name.to_owned(),
            script,
            _lock: lock,
        };
        if !o.success() {
            drop(c); // stops what was started
            return skip_or_fail(&format!(
                "cannot start the {name} test cluster (scripts/cluster/{name}.sh start failed)\n{}",
                o.report()
            ));
        }
        eprintln!("cluster {name} started in {:.1} s", o.elapsed.as_secs_f64());
        Some(c)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut cmd = command("bash");
        cmd.arg(&self.script).arg("stop");
        let o = Job::spawn(&mut cmd).wait(Duration::from_secs(60));
        if !o.success() {
            eprintln!(
                "stopping the {} test cluster failed\n{}",
                self.name,
                o.report()
            );
        }
    }
}
