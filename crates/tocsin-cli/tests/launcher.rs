//! Integration tests of `tocsin run` (the launcher and PMI-1 server) and of the PMI-1 client
//! (`tocsin-pmi-check`), including under MPICH's hydra.
//!
//! Time bounds here are hang guards only, not performance targets.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{command, Job, Outcome, TOCSIN};

const CHECK: &str = env!("CARGO_BIN_EXE_tocsin-pmi-check");
/// Generous bound after which a test declares a hang.
const HANG: Duration = Duration::from_secs(20);

/// `tocsin run` with `args`, without any PMI or tocsin variables inherited from the test's
/// environment.
fn tocsin_run(args: &[&str]) -> Command {
    let mut c = command(TOCSIN);
    c.arg("run").args(args);
    c
}

/// Runs `cmd` to completion, failing the test if it takes longer than [`HANG`].
fn run(cmd: &mut Command) -> (Outcome, Duration) {
    let o = common::run(cmd, HANG);
    let took = o.elapsed;
    (o, took)
}

fn stdout(o: &Outcome) -> String {
    o.stdout.clone()
}

fn stderr(o: &Outcome) -> String {
    o.stderr.clone()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// The pids printed as `pid R PID` lines.
fn pids(s: &str) -> Vec<(u32, i32)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("pid ")?.split(' ');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// Whether process `pid` still exists (zombies count as gone: they no longer run).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            // The state follows the parenthesised command name.
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

fn assert_all_gone(pids: &[(u32, i32)]) {
    for &(rank, pid) in pids {
        assert!(
            !alive(pid),
            "rank {rank} (pid {pid}) is still running after the job ended"
        );
    }
}

#[test]
fn kvs_exchange_on_four_ranks() {
    let (o, _) = run(tocsin_run(&["-n", "4", "--", CHECK, "kvs"]).env("TOCSIN_LOG", "warn"));
    assert!(o.success(), "status {:?}, stderr:\n{}", o.code, stderr(&o));
    assert_eq!(
        sorted_lines(&stdout(&o)),
        (0..4)
            .map(|r| format!("rank {r}/4: kvs ok"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn pmi_info_and_binding() {
    let (o, _) = run(&mut tocsin_run(&[
        "-n", "2", "--bind", "core", "--", CHECK, "info",
    ]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    let out = stdout(&o);
    let lines = sorted_lines(&out);
    assert_eq!(lines.len(), 2, "{out}");
    for (r, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("rank={r} size=2 kvsname=tocsin_kvs_")),
            "{l}"
        );
        assert!(l.contains(" universe=2 appnum=0 bound_core="), "{l}");
        let core = l.rsplit_once("bound_core=").unwrap().1;
        assert!(core.parse::<usize>().is_ok(), "rank {r} not bound: {l}");
    }
    let (o, _) = run(&mut tocsin_run(&[
        "-n", "2", "--bind", "none", "--", CHECK, "info",
    ]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    assert!(
        stdout(&o).lines().all(|l| l.ends_with("bound_core=none")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn failing_rank_ends_the_job_with_its_code() {
    let (o, took) = run(&mut tocsin_run(&[
        "-n", "3", "--", CHECK, "exit-if", "1", "3", "30",
    ]));
    assert_eq!(o.code, Some(3), "stderr:\n{}", stderr(&o));
    assert!(took < HANG, "took {took:?}");
    let err = stderr(&o);
    let p = pids(&stdout(&o));
    assert_eq!(p.len(), 3, "stdout:\n{}", stdout(&o));
    let pid1 = p.iter().find(|(r, _)| *r == 1).unwrap().1;
    assert!(
        err.contains(&format!("rank 1 (pid {pid1}) exited with code 3")),
        "stderr:\n{err}"
    );
    assert_all_gone(&p);
}

#[test]
fn rank_killed_by_a_signal_ends_the_job() {
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "3",
        "--",
        CHECK,
        "kill-self",
        "0",
        "30",
    ]));
    assert_eq!(o.code, Some(128 + 9), "stderr:\n{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("rank 0 (pid") && err.contains("killed by signal 9 (SIGKILL)"),
        "stderr:\n{err}"
    );
    let p = pids(&stdout(&o));
    assert_eq!(p.len(), 3, "stdout:\n{}", stdout(&o));
    assert_all_gone(&p);
}

#[test]
fn rank_dying_while_others_wait_in_a_barrier() {
    // Rank 1 exits 5 without entering the barrier ranks 0 and 2 wait in.
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "3",
        "--",
        CHECK,
        "barrier-exit",
        "1",
        "5",
    ]));
    assert_eq!(o.code, Some(5), "stderr:\n{}", stderr(&o));
    assert!(stderr(&o).contains("exited with code 5"), "{}", stderr(&o));
    assert_all_gone(&pids(&stdout(&o)));

    // Rank 1 exits 0 without entering it: the barrier can never complete.
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "3",
        "--",
        CHECK,
        "barrier-exit",
        "1",
        "0",
    ]));
    assert_eq!(o.code, Some(1), "stderr:\n{}", stderr(&o));
    assert!(stderr(&o).contains("can never complete"), "{}", stderr(&o));
    assert_all_gone(&pids(&stdout(&o)));
}

#[test]
fn pmi_abort_ends_the_job_with_its_code() {
    let (o, _) = run(&mut tocsin_run(&[
        "-n", "3", "--", CHECK, "abort", "2", "9",
    ]));
    assert_eq!(o.code, Some(9), "stderr:\n{}", stderr(&o));
    assert!(
        stderr(&o).contains("rank 2 (pid") && stderr(&o).contains("PMI abort with exit code 9"),
        "{}",
        stderr(&o)
    );
    assert_all_gone(&pids(&stdout(&o)));
}

#[test]
fn rank_exiting_zero_early_is_fine() {
    // Not a PMI program at all; rank 0 leaves first, rank 1 later.
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "2",
        "--",
        "sh",
        "-c",
        "if [ \"$PMI_RANK\" = 1 ]; then sleep 0.5; echo late; fi",
    ]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    assert_eq!(stdout(&o), "late\n");
}

#[test]
fn bad_arguments_are_reported() {
    let (o, _) = run(&mut tocsin_run(&["-n", "0", "--", "true"]));
    assert!(!o.success());
    assert!(stderr(&o).contains("at least 1"), "{}", stderr(&o));

    let (o, _) = run(&mut tocsin_run(&["-n", "2"]));
    assert!(!o.success());
    assert!(stderr(&o).contains("PROGRAM"), "{}", stderr(&o));

    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "2",
        "--",
        "no-such-program-tocsin-xyz",
    ]));
    assert_eq!(o.code, Some(127));
    assert!(
        stderr(&o).contains("no-such-program-tocsin-xyz") && stderr(&o).contains("not found"),
        "{}",
        stderr(&o)
    );

    let (o, _) = run(&mut tocsin_run(&["-n", "2", "--", "/nonexistent/dir/prog"]));
    assert_eq!(o.code, Some(127));
    assert!(
        stderr(&o).contains("/nonexistent/dir/prog"),
        "{}",
        stderr(&o)
    );

    let dir = std::env::temp_dir().join(format!("tocsin-launcher-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let (o, _) = run(&mut tocsin_run(&["-n", "1", "--", file.to_str().unwrap()]));
    assert_eq!(o.code, Some(126));
    assert!(stderr(&o).contains("not executable"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);

    let (o, _) = run(&mut tocsin_run(&[
        "-n", "2", "--bind", "socket", "--", "true",
    ]));
    assert!(!o.success());
    assert!(stderr(&o).contains("socket"), "{}", stderr(&o));
}

#[test]
fn tag_output_prefixes_lines() {
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "2",
        "--tag-output",
        "--",
        CHECK,
        "echo",
    ]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    assert_eq!(
        sorted_lines(&stdout(&o)),
        vec![
            "[0] hello from rank 0",
            "[0] tail 0",
            "[1] hello from rank 1",
            "[1] tail 1"
        ]
    );
    let err = stderr(&o);
    assert!(err.contains("[0] warning from rank 0\n"), "{err}");
    assert!(err.contains("[1] warning from rank 1\n"), "{err}");

    // Untagged: lines as they are.
    let (o, _) = run(&mut tocsin_run(&["-n", "1", "--", CHECK, "echo"]));
    assert_eq!(stdout(&o), "hello from rank 0\ntail 0");
}

#[test]
fn sigterm_to_the_launcher_terminates_the_ranks() {
    let job = Job::spawn(&mut tocsin_run(&["-n", "3", "--", CHECK, "sleep", "30"]));
    let started = job.wait_line(HANG, |l| l == "all started");
    let lines = job.stdout_lines();
    assert!(
        started.is_some() && pids(&lines.join("\n")).len() == 3,
        "ranks did not all start: {lines:?}"
    );
    let p = pids(&lines.join("\n"));
    assert!(p.iter().all(|&(_, pid)| alive(pid)));
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(job.pid(), libc::SIGTERM) }, 0);
    let o = job.wait(HANG * 2);
    assert!(!o.timed_out, "the launcher did not end after SIGTERM");
    assert_eq!(o.code, Some(128 + 15));
    let err = o.stderr;
    assert!(err.contains("received SIGTERM"), "{err}");
    assert_all_gone(&p);
}

#[test]
fn posix_shm_names_are_unlinked_at_job_end() {
    let (o, _) = run(&mut tocsin_run(&["-n", "2", "--", CHECK, "shm"]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    let names: Vec<String> = stdout(&o)
        .lines()
        .filter_map(|l| l.strip_prefix("shm ")?.split(' ').nth(1).map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 2, "{}", stdout(&o));
    for n in names {
        let path = format!("/dev/shm{n}");
        assert!(
            !std::path::Path::new(&path).exists(),
            "{path} was not unlinked"
        );
    }
}

#[test]
fn unsupported_pmi_command_gets_an_error_reply() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("skipped: bash is not available");
        return;
    }
    // bash handles multi-digit descriptors in redirections.
    let (o, _) = run(&mut tocsin_run(&[
        "-n",
        "1",
        "--",
        "bash",
        "-c",
        "echo cmd=frobnicate >&$PMI_FD; read -r l <&$PMI_FD; echo \"$l\"",
    ]));
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    assert!(stdout(&o).starts_with("cmd=error rc=-1"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("unsupported PMI command") && stderr(&o).contains("frobnicate"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_launcher_means_singleton() {
    let mut c = command(CHECK);
    c.arg("singleton");
    let (o, _) = run(&mut c);
    assert!(o.success(), "stderr:\n{}", stderr(&o));
    assert_eq!(stdout(&o), "singleton\n");
}

/// MPICH's hydra launcher, if installed.
fn hydra() -> Option<&'static str> {
    ["mpiexec.hydra", "mpiexec.mpich"].into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn pmi_client_works_under_hydra() {
    let Some(mpiexec) = hydra() else {
        eprintln!(
            "skipped: neither mpiexec.hydra nor mpiexec.mpich is installed (Debian package mpich)"
        );
        return;
    };
    for extra in [&[][..], &["-pmi-port"][..]] {
        let mut c = command(mpiexec);
        c.args(extra).args(["-n", "2", CHECK, "kvs"]);
        let (o, _) = run(&mut c);
        assert!(
            o.success(),
            "{mpiexec} {extra:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
            o.code,
            stdout(&o),
            stderr(&o)
        );
        assert_eq!(
            sorted_lines(&stdout(&o)),
            vec!["rank 0/2: kvs ok", "rank 1/2: kvs ok"],
            "{mpiexec} {extra:?}"
        );
    }
    // Abort through hydra ends the job with the code.
    let (o, _) = run(command(mpiexec).args(["-n", "2", CHECK, "abort", "1", "7"]));
    assert_eq!(o.code, Some(7), "stderr:\n{}", stderr(&o));
}
