//! Robustness tests: soak under signal/thread/block progress with two application threads
//! per rank, overlap behind the application's back, interrupt storms, the modes matrix
//! (including `uintr`'s refusal on CPUs without it) and EINTR behaviour. Every job runs
//! `tocsin run -n N -- tocsin-soak CASE ...` (see `src/bin/tocsin-soak.rs` for the cases).
//!
//! Time bounds here are hang guards only, never performance targets: a job that outlives its
//! deadline is killed (the launcher first, which takes its ranks with it) and the test fails
//! with the output gathered so far. Jobs run one at a time (they need the machine's cores).
//! `cargo test --release -p tocsin-cli --test robustness -- --nocapture` shows the `RESULT`
//! observations.

use std::collections::HashMap;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");
const SOAK: &str = env!("CARGO_BIN_EXE_tocsin-soak");

/// One job at a time: they oversubscribe the cores otherwise.
static JOBS: Mutex<()> = Mutex::new(());

struct Job {
    what: String,
    out: String,
    err: String,
    status: ExitStatus,
    elapsed: Duration,
}

impl Job {
    fn assert_ok(&self) -> &Job {
        assert!(
            self.status.success(),
            "{} failed ({:?}) after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.elapsed,
            self.out,
            self.err
        );
        self
    }

    /// The `RESULT <name> k=v...` lines, as maps.
    fn results(&self, name: &str) -> Vec<HashMap<String, String>> {
        self.out
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

    fn one(&self, name: &str) -> HashMap<String, String> {
        let mut v = self.results(name);
        assert_eq!(
            v.len(),
            1,
            "{}: expected one RESULT {name} line\nstdout:\n{}",
            self.what,
            self.out
        );
        v.pop().unwrap()
    }
}

/// Runs `tocsin run -n n -- tocsin-soak args...` in progress mode `mode`, with `env`, killing
/// it after `deadline` (the ranks' own watchdogs fire 5 s earlier, naming where they were).
fn job(n: u32, mode: &str, args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Job {
    let _one = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    let watchdog = deadline
        .saturating_sub(Duration::from_secs(5))
        .max(Duration::from_secs(5));
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["run", "-n", &n.to_string(), "--", SOAK])
        .args(args)
        .args(["--timeout", &watchdog.as_secs().to_string()]);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") || k.starts_with("PMI_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TOCSIN_PROGRESS", mode).env("TOCSIN_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!(
        "TOCSIN_PROGRESS={mode} tocsin run -n {n} -- tocsin-soak {}",
        args.join(" ")
    );
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tocsin run");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, hung) = match rx.recv_timeout(deadline) {
        Ok(o) => (o, false),
        Err(_) => {
            // SIGTERM: the launcher forwards it to the ranks and kills them after a grace
            // period; SIGKILL if it does not end (its ranks die with it: PDEATHSIG).
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let o = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                rx.recv().expect("output thread")
            });
            (o, true)
        }
    };
    let out = out.expect("wait for tocsin run");
    let j = Job {
        what,
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
        elapsed: start.elapsed(),
    };
    assert!(
        !hung,
        "HANG: {} did not finish within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
        j.what, j.out, j.err
    );
    println!("--- {} ({:.1} s)", j.what, j.elapsed.as_secs_f64());
    for l in j.out.lines().filter(|l| l.starts_with("RESULT")) {
        println!("{l}");
    }
    j
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------------------
// 1. Soak

fn soak(mode: &str, messages: u64, extra: &[&str], deadline: Duration) {
    let m = messages.to_string();
    let mut args = vec!["soak", "--messages", &m];
    args.extend_from_slice(extra);
    let j = job(2, mode, &args, &[], deadline);
    j.assert_ok();
    let r = j.results("soak");
    assert_eq!(r.len(), 2, "one summary per rank\n{}", j.out);
    for s in &r {
        assert_eq!(s["mode"], mode);
        assert_eq!(s["threads"], "2");
        assert_eq!(s["messages"], m, "{s:?}");
        assert_ne!(
            s["rendezvous"], "0",
            "the soak must include rendezvous messages"
        );
    }
    assert_eq!(r[0]["bytes"], r[1]["bytes"]);
    for rank in 0..2 {
        assert!(
            j.out.contains(&format!("ok soak rank {rank}/2")),
            "{}",
            j.out
        );
    }
}

/// 100,000 messages, two application threads per rank, compute between operations, signal
/// progress: every byte, status and count checked by the ranks.
#[test]
fn soak_signal_100k_messages_two_threads() {
    soak("signal", 100_000, &[], secs(240));
}

/// The registered thread only joins two workers: signals land in `pthread_join`, whose
/// handler runs progress for the workers.
#[test]
fn soak_signal_registered_thread_idle_in_join() {
    soak("signal", 20_000, &["--main", "idle"], secs(120));
}

#[test]
fn soak_thread_mode() {
    soak("thread", 20_000, &[], secs(120));
}

#[test]
fn soak_block_mode() {
    soak("block", 20_000, &[], secs(120));
}

// ---------------------------------------------------------------------------------------
// 2. Overlap behind the application's back

fn overlap(mode: &str, side: &str, order: &str) -> bool {
    let j = job(
        2,
        mode,
        &["overlap", "--side", side, "--order", order],
        &[],
        secs(60),
    );
    j.assert_ok();
    let r = j.one("overlap");
    assert_eq!((r["side"].as_str(), r["order"].as_str()), (side, order));
    r["complete_before_wait"] == "true"
}

fn overlap_must_complete(mode: &str) {
    for side in ["recv", "send"] {
        for order in ["posted", "unexpected"] {
            assert!(
                overlap(mode, side, order),
                "{mode} mode: a 4 MiB {side} request (order {order}) did not complete while \
                 the rank computed for 300 ms without calling tocsin and its peer waited"
            );
        }
    }
}

/// The receiver (irecv 4 MiB) and the sender (isend 4 MiB) compute 300 ms without calling
/// tocsin while the peer waits: the request must be complete before `wait`.
#[test]
fn overlap_happens_in_signal_mode() {
    overlap_must_complete("signal");
}

#[test]
fn overlap_happens_in_thread_mode() {
    overlap_must_complete("thread");
}

/// Without interrupts or a progress thread, a computing rank's requests do not progress:
/// only observed (data is still checked by the ranks).
#[test]
fn overlap_observed_in_poll_and_block_modes() {
    for mode in ["poll", "block"] {
        for side in ["recv", "send"] {
            let done = overlap(mode, side, "posted");
            println!("{mode}: {side} side complete before wait: {done}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Interrupt storms

/// Rank 0 sends small messages for 2 s, each possibly interrupting rank 1, which performs a
/// fixed count of iterations meanwhile: the count is reached, the result equals the same work
/// done without traffic, and every message then arrives in order with its content.
#[test]
fn storm_of_small_messages_while_computing() {
    for mode in ["signal", "thread"] {
        let j = job(2, mode, &["storm", "--storm-ms", "2000"], &[], secs(120));
        j.assert_ok();
        let r = j.one("storm");
        let s = j.one("storm-sender");
        assert_eq!(r["messages"], s["messages"]);
        assert_ne!(r["messages"], "0");
    }
}

/// A signal number for the job, fixed so that rank 0 can raise tocsin's own signal itself.
fn tocsin_signal() -> String {
    (libc::SIGRTMIN() + 6).to_string()
}

/// Rank 0 floods rank 1's registered thread with tocsin's own signal while rank 1 sits in
/// blocking receives of rendezvous and eager messages: data correct, no hang.
#[test]
fn storm_of_tocsin_signals_inside_blocking_receives() {
    let sig = tocsin_signal();
    let j = job(
        2,
        "signal",
        &["storm-recv", "--with", "tocsin"],
        &[("TOCSIN_SIGNAL", &sig)],
        secs(120),
    );
    j.assert_ok();
    let s = j.one("storm-recv-sender");
    assert_ne!(s["signals_sent"], "0");
}

/// The same with an application signal (SIGUSR1, handler without SA_RESTART): tocsin's own
/// system calls (futex waits, CMA) must cope with EINTR.
#[test]
fn storm_of_application_signals_inside_blocking_receives() {
    for mode in ["signal", "block"] {
        let j = job(2, mode, &["storm-recv", "--with", "app"], &[], secs(120));
        j.assert_ok();
        let r = j.one("storm-recv");
        assert_ne!(
            r["app_handler_runs"], "0",
            "the application's handler never ran"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Modes matrix

#[test]
fn ring_traffic_in_every_mode_on_2_and_4_ranks() {
    for n in [2u32, 4] {
        for mode in ["poll", "block", "thread", "signal"] {
            // 4 ranks on 2 cores: poll spins against its peers, keep it tiny.
            let args: &[&str] = if n == 4 && mode == "poll" {
                &["ring", "--rounds", "3", "--big", "65536"]
            } else {
                &["ring"]
            };
            let j = job(n, mode, args, &[], secs(120));
            j.assert_ok();
            let r = j.one("ring");
            assert_eq!(r["ranks"], n.to_string());
            assert_eq!(r["mode"], mode);
            for rank in 0..n {
                assert!(
                    j.out.contains(&format!("ok ring rank {rank}/{n}")),
                    "{}",
                    j.out
                );
            }
        }
    }
}

/// `uintr` runs where the CPU and kernel have user interrupts, and is refused at init with a
/// message naming the CPUID bit where the CPU lacks them (this VM).
#[test]
fn uintr_mode_runs_or_is_refused_clearly() {
    use tocsin::interrupt::uintr;
    let j = job(2, "uintr", &["ring", "--rounds", "2"], &[], secs(60));
    if uintr::cpu_has_uintr() && uintr::kernel_flag() {
        j.assert_ok();
    } else {
        assert!(
            !j.status.success(),
            "uintr mode started on a machine without UINTR\nstdout:\n{}",
            j.out
        );
        assert!(j.err.contains("init failed:"), "stderr:\n{}", j.err);
        assert!(j.err.contains("uintr"), "stderr:\n{}", j.err);
        if !uintr::cpu_has_uintr() {
            assert!(
                j.err.contains("CPUID"),
                "the refusal must name the CPU:\n{}",
                j.err
            );
        }
        assert!(!j.out.contains("ok ring"), "{}", j.out);
    }
}

// ---------------------------------------------------------------------------------------
// 5. EINTR

/// Rank 1's registered thread sits in `std::thread::sleep`, raw `nanosleep`, a blocking pipe
/// `read` and `poll` while rank 0 sends it a burst it had posted receives for. Data must
/// arrive (checked by the ranks); in signal and thread modes the burst must have completed
/// behind the blocked `read`/`poll` (rank 0 writes the pipe only once its sends completed,
/// which needs rank 1's progress). EINTR counts are observations (printed).
fn eintr(mode: &str) {
    let j = job(2, mode, &["eintr"], &[], secs(120));
    j.assert_ok();
    let r = j.results("eintr");
    assert_eq!(r.len(), 4, "{}", j.out);
    for p in &r {
        let phase = p["phase"].as_str();
        if mode != "block" && (phase == "read" || phase == "poll") {
            let (c, m) = p["complete_before_wait"].split_once('/').unwrap();
            assert_eq!(
                c, m,
                "{mode} mode, phase {phase}: the burst did not complete while the registered \
                 thread was blocked: {p:?}"
            );
        }
        if phase == "read" {
            // SA_RESTART (tocsin's handler in signal mode): a blocking pipe read is
            // restarted by the kernel, it never returns EINTR.
            assert_eq!(p["eintr"], "0", "{p:?}");
        }
    }
}

#[test]
fn eintr_in_the_registered_thread_signal_mode() {
    eintr("signal");
}

#[test]
fn eintr_in_the_registered_thread_thread_mode() {
    eintr("thread");
}

#[test]
fn eintr_in_the_registered_thread_block_mode() {
    eintr("block");
}
