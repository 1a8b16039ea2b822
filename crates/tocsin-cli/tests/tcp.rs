//! The TCP transport on loopback (`TOCSIN_NOLOCAL=1 TOCSIN_TCP_IF=lo`): what the
//! point-to-point suite (`tests/p2p.rs`, `tcp_nolocal_*`) does not check: connections that
//! do not present the job's secret are closed and logged while the job goes on,
//! `TOCSIN_TCP_IF` accepts a name or a CIDR and refuses anything else by name, and peers are
//! served by the transport `Comm::transport` reports.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

mod common;
use common::{run, serial, tocsin_run, Job};

const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");
const DEADLINE: Duration = Duration::from_secs(60);

/// The TCP ports `pid` listens on (from `/proc/PID/net/tcp` and its socket descriptors).
fn listening_ports(pid: i32) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let s = l.to_string_lossy().into_owned();
                    Some(s.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address st … inode
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].split(':').nth(1)?;
                u16::from_str_radix(port, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn connections_without_the_job_secret_are_closed_and_logged() {
    let _g = serial();
    // Thread mode: the progress thread sleeps in epoll_wait over the listener, so the
    // intruder is seen while the ranks merely hold.
    let mut cmd = tocsin_run(2, TESTRANK);
    cmd.args(["--timeout", "30", "hold", "--secs", "3"])
        .env("TOCSIN_PROGRESS", "thread")
        .env("TOCSIN_NOLOCAL", "1")
        .env("TOCSIN_TCP_IF", "lo");
    let job = Job::spawn(&mut cmd);
    let line = job
        .wait_line(Duration::from_secs(20), |l| l.starts_with("pid 0 "))
        .expect("rank 0 printed its pid");
    let pid: i32 = line[6..].trim().parse().expect("a pid");
    let ports = listening_ports(pid);
    assert!(
        !ports.is_empty(),
        "rank 0 (pid {pid}) listens on no TCP port"
    );
    for port in &ports {
        // A wrong secret, then a short garbage line.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", *port)).expect("connect");
        let mut hello = [0u8; 36];
        hello[..8].copy_from_slice(b"TOCSIN01");
        hello[8..24].copy_from_slice(&[0x55; 16]);
        s.write_all(&hello).expect("write");
        let mut s2 = std::net::TcpStream::connect(("127.0.0.1", *port)).expect("connect");
        s2.write_all(b"GET / HTTP/1.0\r\n\r\n0123456789abcdef0123")
            .expect("write");
        drop(s2);
    }
    let o = job.wait(DEADLINE);
    assert!(
        o.success(),
        "the job must go on after intruders\n{}",
        o.report()
    );
    assert!(
        o.stderr.contains("closed a TCP connection from 127.0.0.1")
            && o.stderr.contains("did not present this job's secret"),
        "no log of the rejected connection\n{}",
        o.report()
    );
}

#[test]
fn tcp_interface_by_name_or_cidr_and_bad_values_are_named() {
    let _g = serial();
    for spec in ["lo", "127.0.0.0/8"] {
        let mut cmd = tocsin_run(2, TESTRANK);
        cmd.args(["--timeout", "30", "transports"])
            .env("TOCSIN_NOLOCAL", "1")
            .env("TOCSIN_TCP_IF", spec);
        let o = run(&mut cmd, DEADLINE);
        o.assert_ranks_ok(2, "transports");
        assert!(
            o.stdout.contains("transports rank 0: 0=self 1=tcp")
                && o.stdout.contains("transports rank 1: 0=tcp 1=self"),
            "{spec}\n{}",
            o.report()
        );
    }
    for (spec, needle) in [
        ("no-such-if0", "no interface matches it"),
        ("10.255.255.0/24", "no interface matches it"),
        ("127.0.0.0/33", "prefix length"),
        ("999.1.1.1/8", "IPv4 CIDR"),
    ] {
        let mut cmd = tocsin_run(2, TESTRANK);
        cmd.args(["--timeout", "30", "transports"])
            .env("TOCSIN_NOLOCAL", "1")
            .env("TOCSIN_TCP_IF", spec);
        let o = run(&mut cmd, DEADLINE);
        assert!(!o.success(), "{spec} accepted\n{}", o.report());
        assert!(
            o.stderr.contains("TOCSIN_TCP_IF") && o.stderr.contains(needle),
            "{spec}: no clear error\n{}",
            o.report()
        );
    }
}

#[test]
fn one_node_uses_shared_memory_and_nolocal_uses_tcp() {
    let _g = serial();
    let mut cmd = tocsin_run(3, TESTRANK);
    cmd.args(["--timeout", "30", "transports"]);
    let o = run(&mut cmd, DEADLINE);
    o.assert_ranks_ok(3, "transports");
    assert!(
        o.stdout.contains("transports rank 1: 0=shm 1=self 2=shm"),
        "{}",
        o.report()
    );
    let mut cmd = tocsin_run(3, TESTRANK);
    cmd.args(["--timeout", "30", "transports"])
        .env("TOCSIN_NOLOCAL", "1")
        .env("TOCSIN_TCP_IF", "lo");
    let o = run(&mut cmd, DEADLINE);
    o.assert_ranks_ok(3, "transports");
    assert!(
        o.stdout.contains("transports rank 1: 0=tcp 1=self 2=tcp"),
        "{}",
        o.report()
    );
}
