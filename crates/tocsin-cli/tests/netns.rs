//! Jobs under MPICH's hydra on two "hosts" of this machine, h1 and h2
//! (`scripts/cluster/netns.sh`): network, hostname, IPC, PID (+ /proc) and mount (+ private
//! /dev/shm, /etc/hosts) namespaces each, joined by a bridge. `mpiexec.hydra` runs here with
//! `-launcher ssh -launcher-exec scripts/cluster/nsexec`, which starts its proxies inside the
//! hosts, so ranks on h1 and h2 really cannot share memory.
//!
//! Each test starts the hosts and stops them (by the holders' pids, which kills everything
//! in them) when its guard drops, panicking or not. Needs root, iproute2, util-linux and
//! MPICH (`scripts/setup.sh`); skipped, saying why, without them unless `CI` is set (then it
//! fails).
//!
//! [`two_hosts_p2p_and_jacobi`] runs the point-to-point suite and jacobi on 4 ranks, two per
//! host: shared memory inside a host, TCP between them (each host's name resolves to its
//! own address, which is what tocsin listens on by default).

use std::process::Command;
use std::time::Duration;

mod common;
use common::{command, run, script, serial, which, Cluster, Job, Outcome};

const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");
const PMI_CHECK: &str = env!("CARGO_BIN_EXE_tocsin-pmi-check");
const JACOBI: &str = env!("CARGO_BIN_EXE_jacobi");
const DEADLINE: Duration = Duration::from_secs(90);

/// The hosts, or `None` if the test is skipped.
fn hosts() -> Option<Cluster> {
    if which("mpiexec.hydra").is_none() {
        return common::skip_or_fail(
            "mpiexec.hydra is not installed (Debian: mpich; bash scripts/setup.sh)",
        );
    }
    Cluster::start("netns")
}

/// `mpiexec.hydra -launcher ssh -launcher-exec nsexec -hosts HOSTS [-ppn PPN] -n N PROGRAM`.
fn hydra(hosts: &str, ppn: Option<u32>, n: u32, program: &str) -> Command {
    let mut cmd = command(which("mpiexec.hydra").unwrap());
    cmd.args(["-launcher", "ssh", "-launcher-exec"])
        .arg(script("scripts/cluster/nsexec"))
        .args(["-hosts", hosts]);
    if let Some(p) = ppn {
        cmd.args(["-ppn", &p.to_string()]);
    }
    cmd.args(["-n", &n.to_string(), program]);
    cmd
}

/// A job's extra environment.
type Env = &'static [(&'static str, &'static str)];

/// The point-to-point cases for `n` ranks: (case, progress mode, environment).
const CASES: &[(&str, &str, Env)] = &[
    ("sizes", "poll", &[]),
    ("sizes", "signal", &[]),
    ("sizes", "thread", &[("TOCSIN_EAGER_THRESHOLD", "0")]),
    ("flood", "signal", &[]),
    ("background", "signal", &[]),
    ("sizes", "block", &[("TOCSIN_CMA", "0")]),
    ("wildcards", "block", &[]),
    ("ordering", "poll", &[]),
    ("truncation", "block", &[]),
    ("probe", "poll", &[]),
    ("sendrecv", "block", &[]),
    ("waitany", "block", &[]),
    ("random", "block", &[("TOCSIN_SHM", "posix")]),
];

/// Runs [`CASES`] and jacobi `--check` with `n` ranks on `hosts` (`ppn` per host); fails
/// naming every failed job.
fn suite(hosts: &str, ppn: Option<u32>, n: u32) {
    let mut failed = Vec::new();
    // Which transport serves each peer: shm inside a host, tcp across.
    let o = run(hydra(hosts, ppn, n, TESTRANK).arg("transports"), DEADLINE);
    o.assert_ranks_ok(n, "transports");
    let per = ppn.unwrap_or(n);
    for r in 0..n {
        let want: Vec<String> = (0..n)
            .map(|p| {
                let t = if p == r {
                    "self"
                } else if hosts.contains(',') && p / per != r / per {
                    "tcp"
                } else {
                    "shm"
                };
                format!("{p}={t}")
            })
            .collect();
        let line = format!("transports rank {r}: {}", want.join(" "));
        assert!(
            o.stdout.contains(&line),
            "expected {line:?}\n{}",
            o.report()
        );
    }
    for (case, mode, env) in CASES {
        if *case == "wildcards" && n < 3 {
            continue; // needs 3 ranks
        }
        let mut cmd = hydra(hosts, ppn, n, TESTRANK);
        cmd.args(["--timeout", "60", case])
            .env("TOCSIN_PROGRESS", mode)
            .envs(env.iter().copied());
        if *case == "random" {
            cmd.args(["--total", "2000"]);
        }
        let o = run(&mut cmd, DEADLINE);
        if std::panic::catch_unwind(|| o.assert_ranks_ok(n, case)).is_err() {
            failed.push(format!("{case} mode={mode} env={env:?}"));
        }
    }
    assert!(failed.is_empty(), "failed on {hosts}: {failed:?}");
    let mut cmd = hydra(hosts, ppn, n, JACOBI);
    cmd.args([
        "--nx", "96", "--ny", "64", "--iters", "200", "--report", "50", "--check",
    ])
    .env("TOCSIN_PROGRESS", "block");
    let o = run(&mut cmd, DEADLINE);
    assert!(
        o.success() && o.stdout.contains("PASSED"),
        "jacobi --check on {hosts}\n{}",
        o.report()
    );
}

/// The `mapping …` lines, by rank: (host, node index, whole map).
fn mappings(o: &Outcome, n: u32) -> Vec<(String, String, String)> {
    (0..n)
        .map(|r| {
            let line = o
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("mapping rank={r} ")))
                .unwrap_or_else(|| panic!("no mapping line for rank {r}\n{}", o.report()));
            let f = |k: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .unwrap_or("")
                    .to_owned()
            };
            (f("host"), f("node"), f("map"))
        })
        .collect()
}

#[test]
fn hosts_are_isolated_and_hydra_places_ranks_on_both() {
    let _g = serial();
    let Some(_hosts) = hosts() else { return };
    let nsexec = script("scripts/cluster/nsexec");
    // Hostnames, and /dev/shm private to each host.
    let o = run(
        command(&nsexec).args([
            "h1",
            "hostname && touch /dev/shm/tocsin-netns-probe && ls /dev/shm",
        ]),
        DEADLINE,
    );
    assert!(
        o.success() && o.stdout.starts_with("h1\n") && o.stdout.contains("tocsin-netns-probe"),
        "{}",
        o.report()
    );
    let o = run(
        command(&nsexec).args(["h2", "hostname && ls -A /dev/shm && ps -e -o pid= | wc -l"]),
        DEADLINE,
    );
    assert!(
        o.success() && o.stdout.starts_with("h2\n") && !o.stdout.contains("tocsin-netns-probe"),
        "h2 sees h1's /dev/shm\n{}",
        o.report()
    );
    assert!(
        !std::path::Path::new("/dev/shm/tocsin-netns-probe").exists(),
        "this machine sees h1's /dev/shm"
    );
    // hydra: -ppn 2 puts ranks 0-1 on h1, 2-3 on h2, and publishes that mapping.
    let o = run(
        hydra("h1,h2", Some(2), 4, PMI_CHECK).arg("mapping"),
        DEADLINE,
    );
    assert!(o.success(), "{}", o.report());
    let m = mappings(&o, 4);
    for (r, (host, node, map)) in m.iter().enumerate() {
        let (want_host, want_node) = if r < 2 { ("h1", "0") } else { ("h2", "1") };
        assert_eq!(
            (host.as_str(), node.as_str(), map.as_str()),
            (want_host, want_node, "0,0,1,1"),
            "rank {r}\n{}",
            o.report()
        );
    }
    // The PMI key-value space works across the hosts.
    let o = run(hydra("h1,h2", Some(2), 4, PMI_CHECK).arg("kvs"), DEADLINE);
    assert!(
        o.success() && o.stdout.matches(": kvs ok").count() == 4,
        "{}",
        o.report()
    );
}

#[test]
fn one_host_p2p_and_jacobi() {
    let _g = serial();
    let Some(_hosts) = hosts() else { return };
    suite("h1", None, 2);
    suite("h2", None, 3);
}

#[test]
fn two_hosts_p2p_and_jacobi() {
    let _g = serial();
    let Some(_hosts) = hosts() else { return };
    suite("h1,h2", Some(2), 4);
}

/// A host that vanishes silently (its link cut: no FIN, no reset): the rank waiting on one
/// of its ranks gets `PeerDied` within seconds (keepalive, `TCP_USER_TIMEOUT`).
#[test]
fn a_host_that_vanishes_fails_its_peers_within_seconds() {
    let _g = serial();
    let Some(_hosts) = hosts() else { return };
    for mode in ["block", "signal"] {
        let mut cmd = hydra("h1,h2", Some(1), 2, TESTRANK);
        cmd.args([
            "--timeout",
            "60",
            "vanish",
            "--cut",
            "ip link set eth0 down",
        ])
        .env("TOCSIN_PROGRESS", mode);
        // The job itself cannot end (h2 is unreachable, and hydra waits for its proxy):
        // rank 0's lines are what count, then the job is killed.
        let job = Job::spawn(&mut cmd);
        let line = job.wait_line(Duration::from_secs(30), |l| {
            l.starts_with("vanish: rank 0 saw PeerDied after ")
        });
        let lines = job.stdout_lines();
        let o = job.wait(Duration::from_millis(100));
        let Some(line) = line else {
            panic!(
                "{mode}: rank 0 did not get PeerDied from the vanished host\n{}",
                o.report()
            );
        };
        assert!(
            lines.iter().any(|l| l.starts_with("ok vanish rank 1/2")),
            "{mode}: rank 1 did not reach the cut\n{}",
            o.report()
        );
        let secs: f64 = line
            .trim_start_matches("vanish: rank 0 saw PeerDied after ")
            .trim_end_matches(" s")
            .parse()
            .unwrap_or(f64::MAX);
        // 5× the promise (about 3 s: keepalive, TCP_USER_TIMEOUT): a hang guard.
        assert!(
            secs < 15.0,
            "{mode}: PeerDied after {secs} s\n{}",
            o.report()
        );
        eprintln!("{mode}: PeerDied {secs:.1} s after the host vanished");
        // Bring h2 back for the next round.
        let o = run(
            command(script("scripts/cluster/nsexec")).args(["h2", "ip link set eth0 up"]),
            DEADLINE,
        );
        assert!(o.success(), "{}", o.report());
        std::thread::sleep(Duration::from_millis(500));
    }
}
