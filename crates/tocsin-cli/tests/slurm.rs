//! Jobs under Slurm: a two-node cluster on this machine (`scripts/cluster/slurm.sh`: munged,
//! slurmctld, `slurmd -N n1`, `slurmd -N n2`), ranks started by `srun -N2 -n4 --mpi=pmi2`,
//! which talks PMI-1 to them over `PMI_FD` with Slurm's quirks (see `tocsin::pmi`).
//!
//! Each test starts the cluster, runs its jobs and stops the cluster (by the daemons' pids)
//! when its guard drops, panicking or not. It needs root and the Debian packages slurmctld,
//! slurmd, slurm-client and munge (`scripts/setup.sh`); without them it is skipped, saying
//! why, except when `CI` is set, where it fails.
//!
//! The two "nodes" are this one host (same hostname, same /dev/shm), so tocsin's
//! shared-memory transport connects all four ranks although the launcher places them on two
//! nodes (`PMI_process_mapping` = `(vector,(0,2,2))`): these jobs pass today. With the TCP
//! transport, ranks the mapping puts on different nodes may use TCP between them instead.

use std::process::Command;
use std::time::Duration;

mod common;
use common::{command, run, serial, which, Cluster, Outcome};

const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");
const PMI_CHECK: &str = env!("CARGO_BIN_EXE_tocsin-pmi-check");
const JACOBI: &str = env!("CARGO_BIN_EXE_jacobi");
const DEADLINE: Duration = Duration::from_secs(90);

/// A job's extra environment.
type Env = &'static [(&'static str, &'static str)];

/// The cluster, or `None` if the test is skipped.
fn cluster() -> Option<Cluster> {
    if which("srun").is_none() {
        return common::skip_or_fail(
            "srun is not installed (Debian: slurm-client; bash scripts/setup.sh)",
        );
    }
    Cluster::start("slurm")
}

/// `srun -N2 -n4 --mpi=pmi2 PROGRAM` against the test cluster. Four ranks on the two CPUs of
/// the machine: oversubscribed, said explicitly (srun does not set `MPI_LOCALNRANKS`).
fn srun(program: &str) -> Command {
    let dir = std::env::var("TOCSIN_SLURM_DIR")
        .unwrap_or_else(|_| format!("/tmp/tocsin-slurm-{}", unsafe { libc::geteuid() }));
    let mut cmd = command(which("srun").unwrap());
    cmd.env("SLURM_CONF", format!("{dir}/slurm.conf"))
        .env("TOCSIN_OVERSUBSCRIBED", "1")
        // n1 and n2 are this one machine: TCP between them on loopback, never the
        // machine's external address.
        .env("TOCSIN_TCP_IF", "lo")
        .args(["-N2", "-n4", "--mpi=pmi2", "--time=2", program]);
    cmd
}

/// The `mapping …` line of `rank`, as `key=value` pairs.
fn mapping_of(o: &Outcome, rank: u32) -> std::collections::HashMap<String, String> {
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("mapping rank={rank} ")))
        .unwrap_or_else(|| panic!("no mapping line for rank {rank}\n{}", o.report()));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn srun_places_two_ranks_per_node_and_publishes_the_mapping() {
    let _g = serial();
    let Some(_cluster) = cluster() else { return };
    let o = run(srun(PMI_CHECK).arg("mapping"), DEADLINE);
    assert!(o.success(), "{}", o.report());
    for rank in 0..4 {
        let m = mapping_of(&o, rank);
        let node = if rank < 2 { "0" } else { "1" };
        let name = if rank < 2 { "n1" } else { "n2" };
        assert_eq!(m["size"], "4", "{}", o.report());
        assert_eq!(m["map"], "0,0,1,1", "{}", o.report());
        assert_eq!(m["node"], node, "rank {rank}\n{}", o.report());
        assert_eq!(m["slurm_nodeid"], node, "rank {rank}\n{}", o.report());
        assert_eq!(m["slurmd_nodename"], name, "rank {rank}\n{}", o.report());
    }
    // Slurm's PMI-1 answers as measured: appnum -1, the step's kvsname.
    let o = run(srun(PMI_CHECK).arg("info"), DEADLINE);
    assert!(o.success(), "{}", o.report());
    assert_eq!(o.stdout.matches("appnum=-1").count(), 4, "{}", o.report());
    let o = run(srun(PMI_CHECK).arg("kvs"), DEADLINE);
    assert!(o.success(), "{}", o.report());
    assert_eq!(o.stdout.matches(": kvs ok").count(), 4, "{}", o.report());
}

#[test]
fn p2p_suite_and_jacobi_under_srun() {
    let _g = serial();
    let Some(_cluster) = cluster() else { return };
    // (case, progress mode, extra environment)
    // Shared memory inside a node, TCP between n1 and n2.
    let o = run(srun(TESTRANK).arg("transports"), DEADLINE);
    o.assert_ranks_ok(4, "transports");
    for line in [
        "transports rank 0: 0=self 1=shm 2=tcp 3=tcp",
        "transports rank 1: 0=shm 1=self 2=tcp 3=tcp",
        "transports rank 2: 0=tcp 1=tcp 2=self 3=shm",
        "transports rank 3: 0=tcp 1=tcp 2=shm 3=self",
    ] {
        assert!(o.stdout.contains(line), "expected {line:?}\n{}", o.report());
    }
    let cases: &[(&str, &str, Env)] = &[
        ("sizes", "poll", &[]),
        ("sizes", "signal", &[]),
        ("sizes", "thread", &[]),
        ("sizes", "block", &[("TOCSIN_CMA", "0")]),
        ("wildcards", "block", &[]),
        ("ordering", "poll", &[]),
        ("truncation", "block", &[]),
        ("self", "poll", &[]),
        ("probe", "block", &[]),
        ("errors", "block", &[]),
        ("sendrecv", "poll", &[]),
        ("waitany", "block", &[]),
        ("random", "block", &[("TOCSIN_SHM", "posix")]),
    ];
    let mut failed = Vec::new();
    for (case, mode, env) in cases {
        let mut cmd = srun(TESTRANK);
        cmd.args(["--timeout", "60", case])
            .env("TOCSIN_PROGRESS", mode)
            .envs(env.iter().copied());
        if *case == "random" {
            cmd.args(["--total", "2000"]);
        }
        let o = run(&mut cmd, DEADLINE);
        if std::panic::catch_unwind(|| o.assert_ranks_ok(4, case)).is_err() {
            failed.push(format!("{case} mode={mode} env={env:?}"));
        }
    }
    assert!(failed.is_empty(), "failed under srun: {failed:?}");

    let mut cmd = srun(JACOBI);
    cmd.args([
        "--nx", "96", "--ny", "64", "--iters", "200", "--report", "50", "--check",
    ])
    .env("TOCSIN_PROGRESS", "block");
    let o = run(&mut cmd, DEADLINE);
    assert!(
        o.success() && o.stdout.contains("PASSED"),
        "jacobi --check under srun\n{}",
        o.report()
    );
}
