//! `tocsin-faultrank`: the fault-handling test program, one case per run, for
//! `tests/faults.rs`.
//!
//! Usage: `tocsin run -n N -- tocsin-faultrank CASE [--die-at PHASE]` (or under
//! `mpiexec.hydra -disable-auto-cleanup`, a launcher that leaves survivors running). Every
//! surviving rank checks real outcomes (bytes, statuses, error variants) and prints
//! `ok CASE rank R/N`; on failure it prints `FAIL CASE rank R/N: why` and exits 1. A
//! watchdog ends a rank stuck longer than `--timeout` seconds with exit code 3: a hang guard,
//! never a speed check.
//!
//! Cases:
//! - `wait-any-dead` (2): rank 1 is killed (SIGKILL, no clean-up); rank 0's `wait_any` over
//!   two receives from it, a loop of `Request::test`, a loop of `iprobe` and `probe` all end
//!   with `PeerDied` instead of spinning forever.
//! - `manager` (≥3): workers send a result to rank 0 and finish cleanly at staggered times;
//!   rank 0 receives every result with `ANY_SOURCE` receives posted while workers are
//!   finishing (a finished rank is not a failed one); once all are gone, a further
//!   `ANY_SOURCE` receive and a receive naming a worker fail with `PeerDied`.
//! - `cancel` (2): an unmatched receive cancelled completes with `Cancelled` and the message
//!   meant for it is received later by another receive; a matched one completes normally;
//!   an early `?` return between `irecv` and `wait` does not hang; a dropped unmatched
//!   receive is cancelled.
//! - `scope-panic` (2): a panic in a scope with a forgotten unmatched receive and a
//!   forgotten rendezvous receive already under way: `catch_unwind` returns, the rendezvous
//!   data is complete in the buffer before it is freed, the unmatched receive was cancelled
//!   (its message is received afterwards).
//! - `scope-panic-abort` (2): a panic unwinds a scope whose rendezvous send can never
//!   complete (the peer never receives): the process aborts with a message (exit by SIGABRT).
//! - `dead-deep-ring` (2): rank 1 sends `--count` eager messages into a deep ring, then is
//!   killed; rank 0 receives every one of them intact, then gets `PeerDied`.
//! - `full-ring-sleeps` (2): rank 1 computes without calling tocsin while rank 0's blocking
//!   sends fill its ring; in a sleeping mode rank 0 must sleep (thread CPU under half the
//!   wall time) until rank 1 frees space, and every message arrives.
//! - `deep-ring` (2): `--count` small messages into a deep ring, received in order; reports
//!   the receive time (the measurement behind "never sleep with records unread").
//! - `uintr-refused` (any, `TOCSIN_PROGRESS=uintr`, on a machine with UINTR): the thread
//!   already has a user-interrupt handler, so `init`'s registration is refused: `init` fails
//!   with an error naming `uintr_register_handler` and EBUSY, and nothing hangs. Elsewhere
//!   it prints why it skipped.
//! - `phases` (≥3, `--die-at`): rank `--victim` is killed at a phase (`startup`, `eager`,
//!   `rts`, `cts`, `pipeline`, `barrier`, `handler`); the survivors' operations that need it
//!   fail with `PeerDied` and their traffic among themselves completes.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tocsin::{wait_any, Comm, Error, Rank, ANY_SOURCE, ANY_TAG};
use tocsin_cli::ensure;
use tocsin_cli::testkit::data::pattern;
use tocsin_cli::testkit::report::{self, step};
use tocsin_cli::testkit::{thread_cpu, R};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Case {
    WaitAnyDead,
    Manager,
    Cancel,
    ScopePanic,
    ScopePanicAbort,
    DeadDeepRing,
    FullRingSleeps,
    DeepRing,
    Phases,
    UintrRefused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Before `tocsin::init`.
    Startup,
    /// After sending eager messages to rank 0.
    Eager,
    /// After posting a rendezvous send to rank 0 (RTS out, no CTS yet).
    Rts,
    /// After answering rank 0's RTS with a CTS (rank 0 is copying into it).
    Cts,
    /// In the middle of a pipelined rendezvous from rank 0 (`TOCSIN_CMA=0`).
    Pipeline,
    /// While the others are in a barrier.
    Barrier,
    /// While computing in `signal` mode under a storm of interrupts from rank 0.
    Handler,
}

/// The fault test program (see the module documentation).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The case to run.
    #[arg(value_enum)]
    case: Case,
    /// `phases`: when the victim dies.
    #[arg(long, value_enum, default_value = "eager")]
    die_at: Phase,
    /// `phases`: the rank that dies.
    #[arg(long, default_value_t = 2)]
    victim: Rank,
    /// Messages for `dead-deep-ring` and `deep-ring`.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Hang guard: a rank stuck longer than this many seconds exits with code 3.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

fn die_now() -> ! {
    // SAFETY: raising SIGKILL on ourselves: no clean-up, as a crash.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}

fn is_dead(r: &tocsin::Result<impl std::fmt::Debug>, rank: Rank) -> bool {
    matches!(r, Err(Error::PeerDied { rank: d, .. }) if *d == rank)
}

const BIG: usize = 4 << 20;

fn case_wait_any_dead(c: &Comm) -> R {
    if c.rank() == 1 {
        c.barrier().map_err(|e| e.to_string())?;
        die_now();
    }
    if c.rank() != 0 {
        return Ok(());
    }
    c.barrier().map_err(|e| e.to_string())?;
    let (mut a, mut b, mut d) = (vec![0u8; 8], vec![0u8; BIG], vec![0u8; 8]);
    c.scope(|s| -> R {
        step("wait_any over receives from the dead rank");
        let mut reqs = vec![
            s.irecv(&mut a, 1, 1).map_err(|e| e.to_string())?,
            s.irecv(&mut b, 1, 2).map_err(|e| e.to_string())?,
        ];
        let r = wait_any(&mut reqs);
        ensure!(is_dead(&r, 1), "wait_any: {r:?}, expected PeerDied");
        step("test loop");
        let mut q = s.irecv(&mut d, 1, 3).map_err(|e| e.to_string())?;
        let r = loop {
            match q.test() {
                Ok(None) => std::hint::spin_loop(),
                other => break other,
            }
        };
        ensure!(is_dead(&r, 1), "test loop: {r:?}, expected PeerDied");
        Ok(())
    })?;
    step("iprobe loop");
    let r = loop {
        match c.iprobe(1, ANY_TAG) {
            Ok(None) => std::hint::spin_loop(),
            other => break other,
        }
    };
    ensure!(is_dead(&r, 1), "iprobe loop: {r:?}, expected PeerDied");
    let r = c.iprobe(ANY_SOURCE, ANY_TAG);
    ensure!(
        is_dead(&r, 1),
        "iprobe(ANY_SOURCE) with every peer dead: {r:?}"
    );
    let r = c.probe(1, 0);
    ensure!(is_dead(&r, 1), "probe: {r:?}");
    Ok(())
}

fn case_manager(c: &Comm) -> R {
    let (me, n) = (c.rank(), c.size());
    ensure!(n >= 3, "manager needs at least 3 ranks");
    if me != 0 {
        std::thread::sleep(Duration::from_millis(50 * me as u64));
        let result = pattern(me as u64, 1000 + me as usize);
        c.send(&result, 0, 7).map_err(|e| e.to_string())?;
        return Ok(()); // the communicator drops: this rank finishes cleanly
    }
    let mut seen = vec![false; n as usize];
    for i in 1..n {
        step(format!("ANY_SOURCE receive {i}"));
        let mut buf = vec![0u8; 4096];
        let st = c
            .recv(&mut buf, ANY_SOURCE, 7)
            .map_err(|e| format!("result {i} of {}: {e}", n - 1))?;
        let want = pattern(st.source as u64, 1000 + st.source as usize);
        ensure!(
            buf[..st.len] == want[..],
            "result of rank {} corrupted",
            st.source
        );
        ensure!(!seen[st.source as usize], "two results from {}", st.source);
        seen[st.source as usize] = true;
    }
    step("receive after every worker finished");
    let mut b = [0u8; 4];
    let r = c.recv(&mut b, ANY_SOURCE, 7);
    ensure!(
        matches!(r, Err(Error::PeerDied { .. })),
        "ANY_SOURCE receive with every other rank finished: {r:?}, expected PeerDied"
    );
    let r = c.recv(&mut b, 1, 7);
    ensure!(is_dead(&r, 1), "receive from finished rank 1: {r:?}");
    let r = c.send(&pattern(1, BIG), 2, 7);
    ensure!(is_dead(&r, 2), "rendezvous send to finished rank 2: {r:?}");
    Ok(())
}

fn case_cancel(c: &Comm) -> R {
    let me = c.rank();
    let e = |e: Error| e.to_string();
    if me == 1 {
        c.barrier().map_err(e)?; // 1: rank 0 cancelled its receive
        c.send(&pattern(5, 100), 0, 5).map_err(e)?;
        c.send(&pattern(6, 100), 0, 6).map_err(e)?;
        c.barrier().map_err(e)?; // 2
        c.send(&pattern(8, 100), 0, 8).map_err(e)?;
        c.barrier().map_err(e)?; // 3
        return Ok(());
    }
    if me != 0 {
        for _ in 0..3 {
            c.barrier().map_err(e)?;
        }
        return Ok(());
    }
    let mut buf = vec![0u8; 100];
    step("cancel an unmatched receive");
    c.scope(|s| -> R {
        let mut r = s.irecv(&mut buf, 1, 5).map_err(e)?;
        ensure!(r.cancel(), "an unmatched receive must be cancellable");
        for _ in 0..2 {
            // The outcome is the same every time it is asked.
            let t = r.test();
            ensure!(
                matches!(t, Err(Error::Cancelled { peer: 1, tag: 5 })),
                "test of a cancelled receive: {t:?}"
            );
        }
        let w = r.wait();
        ensure!(
            matches!(w, Err(Error::Cancelled { peer: 1, tag: 5 })),
            "cancelled receive: {w:?}"
        );
        Ok(())
    })?;
    c.barrier().map_err(e)?; // 1
    step("the message meant for it is still receivable");
    let mut b5 = vec![0u8; 100];
    c.recv(&mut b5, 1, 5).map_err(e)?;
    ensure!(b5 == pattern(5, 100), "tag 5 message corrupted");
    step("a matched receive is not cancelled");
    let mut b6 = vec![0u8; 100];
    c.scope(|s| -> R {
        let mut r = s.irecv(&mut b6, 1, 6).map_err(e)?;
        while !r.is_complete() {
            r.test().map_err(e)?;
        }
        ensure!(!r.cancel(), "a completed receive was cancelled");
        let st = r.wait().map_err(e)?;
        ensure!(st.len == 100, "status {st:?}");
        Ok(())
    })?;
    ensure!(b6 == pattern(6, 100), "tag 6 message corrupted");
    step("an early return between irecv and wait does not hang");
    let mut b7 = vec![0u8; 100];
    let early: R = c.scope(|s| {
        let _r = s.irecv(&mut b7, 1, 7).map_err(e)?; // never sent
        Err("early return".to_string())?;
        Ok(())
    });
    ensure!(early.is_err(), "closure should have returned early");
    step("a dropped unmatched receive is cancelled");
    let mut b8 = vec![0u8; 100];
    c.scope(|s| -> R {
        let r = s.irecv(&mut b8, 1, 8).map_err(e)?;
        drop(r);
        Ok(())
    })?;
    c.barrier().map_err(e)?; // 2
    let mut b8 = vec![0u8; 100];
    c.recv(&mut b8, 1, 8).map_err(e)?;
    ensure!(b8 == pattern(8, 100), "tag 8 message corrupted");
    c.barrier().map_err(e)?; // 3
    Ok(())
}

fn case_scope_panic(c: &Comm) -> R {
    let e = |e: Error| e.to_string();
    let me = c.rank();
    if me == 1 {
        c.barrier().map_err(e)?; // 1: rank 0 posted its receives
        let data = pattern(2, BIG);
        c.scope(|s| -> R {
            let q = s.isend(&data, 0, 2).map_err(e)?;
            // Behind the RTS in the same ring: once rank 0 sees it, the RTS has matched.
            c.send(&[0u8], 0, 98).map_err(e)?;
            q.wait().map_err(e)?;
            Ok(())
        })?;
        c.barrier().map_err(e)?; // 2: rank 0's scope unwound
        c.send(&pattern(1, 64), 0, 1).map_err(e)?;
        return Ok(());
    }
    if me != 0 {
        c.barrier().map_err(e)?;
        c.barrier().map_err(e)?;
        return Ok(());
    }
    let mut small = vec![0u8; 64];
    let mut big = vec![0u8; BIG];
    step("panic in a scope with forgotten receives");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.scope(|s| {
            let r1 = s.irecv(&mut small, 1, 1).expect("irecv");
            let r2 = s.irecv(&mut big, 1, 2).expect("irecv");
            std::mem::forget(r1);
            std::mem::forget(r2);
            c.barrier().expect("barrier");
            // Wait until the RTS has matched the receive (the marker behind it arrived).
            while c.iprobe(1, 98).expect("iprobe").is_none() {}
            panic!("deliberate panic with receives in flight");
        })
    }));
    ensure!(caught.is_err(), "the scope should have panicked");
    ensure!(
        big == pattern(2, BIG),
        "the rendezvous receive was not complete when the scope unwound"
    );
    c.barrier().map_err(e)?; // 2
    let mut marker = [0u8; 1];
    c.recv(&mut marker, 1, 98).map_err(e)?;
    let mut fresh = vec![0u8; 64];
    c.recv(&mut fresh, 1, 1).map_err(e)?;
    ensure!(
        fresh == pattern(1, 64),
        "the cancelled receive's message went astray"
    );
    Ok(())
}

fn case_scope_panic_abort(c: &Comm) -> R {
    if c.rank() != 0 {
        // Never receives tag 1: rank 0's rendezvous send cannot complete.
        let mut b = [0u8; 1];
        let _ = c.recv(&mut b, 0, 2);
        return Ok(());
    }
    let data = pattern(3, BIG);
    c.scope(|s| {
        let _q = s.isend(&data, 1, 1).expect("isend");
        panic!("deliberate panic with a rendezvous send in flight");
    });
    Err("the scope returned instead of aborting".into())
}

fn case_dead_deep_ring(c: &Comm, count: usize) -> R {
    let e = |e: Error| e.to_string();
    if c.rank() == 1 {
        for i in 0..count {
            let v = (i as u64).to_le_bytes();
            c.send(&v, 0, 4).map_err(e)?;
        }
        c.barrier().map_err(e)?;
        die_now();
    }
    if c.rank() != 0 {
        return c.barrier().map_err(e);
    }
    c.barrier().map_err(e)?;
    std::thread::sleep(Duration::from_millis(300)); // rank 1 is dead by now
    for i in 0..count {
        step(format!("message {i} of {count} from the dead rank"));
        let mut b = [0u8; 8];
        c.recv(&mut b, 1, 4)
            .map_err(|err| format!("message {i} of {count}: {err}"))?;
        ensure!(
            u64::from_le_bytes(b) == i as u64,
            "message {i} out of order"
        );
    }
    let mut b = [0u8; 8];
    let r = c.recv(&mut b, 1, 4);
    ensure!(is_dead(&r, 1), "after the last message: {r:?}");
    Ok(())
}

fn case_full_ring_sleeps(c: &Comm) -> R {
    let e = |e: Error| e.to_string();
    let msg = 4096usize;
    let count = 64usize; // 256 KiB: several times a 64 KiB ring
    if c.rank() == 1 {
        c.barrier().map_err(e)?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(800) {
            std::hint::black_box(0u64); // compute, no tocsin call
        }
        for i in 0..count {
            let mut b = vec![0u8; msg];
            c.recv(&mut b, 0, 1).map_err(e)?;
            ensure!(b == pattern(i as u64, msg), "message {i} corrupted");
        }
        return Ok(());
    }
    if c.rank() != 0 {
        return c.barrier().map_err(e);
    }
    c.barrier().map_err(e)?;
    let (w0, c0) = (Instant::now(), thread_cpu());
    for i in 0..count {
        c.send(&pattern(i as u64, msg), 1, 1).map_err(e)?;
    }
    let (wall, cpu) = (w0.elapsed(), thread_cpu() - c0);
    println!(
        "full-ring-sleeps: sends took {:.0} ms wall, {:.0} ms CPU",
        wall.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3
    );
    // In the interrupt modes rank 1's handlers free the space at once: nothing to wait for.
    if c.config().progress_mode().sleeps() && wall > Duration::from_millis(200) {
        ensure!(
            cpu * 2 < wall,
            "blocked behind a full ring, the sender burned {cpu:?} of CPU in {wall:?}"
        );
    }
    Ok(())
}

fn case_deep_ring(c: &Comm, count: usize) -> R {
    let e = |e: Error| e.to_string();
    if c.rank() == 1 {
        for i in 0..count {
            c.send(&(i as u64).to_le_bytes(), 0, 4).map_err(e)?;
        }
        return c.barrier().map_err(e);
    }
    if c.rank() != 0 {
        return c.barrier().map_err(e);
    }
    let t = Instant::now();
    for i in 0..count {
        let mut b = [0u8; 8];
        c.recv(&mut b, 1, 4).map_err(e)?;
        ensure!(
            u64::from_le_bytes(b) == i as u64,
            "message {i} out of order"
        );
    }
    println!(
        "deep-ring: {count} messages received in {:.3} s ({})",
        t.elapsed().as_secs_f64(),
        c.config().progress_mode().name()
    );
    c.barrier().map_err(e)
}

/// `phases`: the victim dies at `phase`; survivors check `PeerDied` toward it and complete
/// their traffic among themselves.
fn case_phases(c: &Comm, phase: Phase, victim: Rank) -> R {
    let e = |e: Error| e.to_string();
    let (me, n) = (c.rank(), c.size());
    ensure!(
        n >= 3 && victim != 0 && victim < n,
        "phases needs ≥3 ranks and victim in 1..n"
    );
    if me == victim {
        match phase {
            Phase::Startup => unreachable!("handled before init"),
            Phase::Eager => {
                for i in 0..10u64 {
                    c.send(&i.to_le_bytes(), 0, 1).map_err(e)?;
                }
                die_now();
            }
            Phase::Rts => {
                let data = pattern(9, BIG);
                c.scope(|s| {
                    let q = s.isend(&data, 0, 2).expect("isend");
                    std::mem::forget(q);
                    die_now()
                })
            }
            Phase::Cts | Phase::Pipeline => {
                let mut b = vec![0u8; BIG];
                c.scope(|s| {
                    let mut r = s.irecv(&mut b, 0, 3).expect("irecv");
                    let t = Instant::now();
                    // Answer the RTS (CTS) and let the copy begin, then die.
                    while t.elapsed() < Duration::from_millis(30) {
                        let _ = r.test();
                    }
                    die_now()
                })
            }
            Phase::Barrier => {
                std::thread::sleep(Duration::from_millis(100));
                die_now();
            }
            Phase::Handler => {
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    die_now();
                });
                let mut b = vec![0u8; BIG];
                c.scope(|s| {
                    let _r = s.irecv(&mut b, 0, 3);
                    loop {
                        std::hint::black_box(0u64); // compute; handlers progress
                    }
                })
            }
        }
    }
    // Survivors.
    if me == 0 {
        step(format!("operation with the victim ({phase:?})"));
        // The operation the victim was part of: it may have completed before the death
        // (then its data must be right) or fail with PeerDied; nothing else, and no hang.
        let r: tocsin::Result<()> = match phase {
            Phase::Eager => (0..10u64).try_for_each(|i| {
                let mut b = [0u8; 8];
                c.recv(&mut b, victim, 1)?;
                if u64::from_le_bytes(b) != i {
                    return Err(Error::Unsupported(format!("eager message {i} corrupted")));
                }
                Ok(())
            }),
            Phase::Rts => {
                let mut b = vec![0u8; BIG];
                c.recv(&mut b, victim, 2).and_then(|_| {
                    if b == pattern(9, BIG) {
                        Ok(())
                    } else {
                        Err(Error::Unsupported("rendezvous data corrupted".into()))
                    }
                })
            }
            Phase::Cts | Phase::Pipeline | Phase::Handler => c.send(&pattern(3, BIG), victim, 3),
            Phase::Startup | Phase::Barrier => Ok(()),
        };
        let eager_must = phase == Phase::Eager;
        ensure!(
            r.is_ok()
                || (!eager_must
                    && matches!(r, Err(Error::PeerDied { rank, .. }) if rank == victim)),
            "operation with rank {victim} dying at {phase:?}: {r:?}"
        );
        step("a receive from the dead rank");
        let mut b = [0u8; 8];
        let r = c.recv(&mut b, victim, 1);
        ensure!(
            is_dead(&r, victim),
            "receive from rank {victim} (dead at {phase:?}): {r:?}, expected PeerDied"
        );
    }
    step("barrier including the victim");
    let r = c.barrier();
    ensure!(
        matches!(r, Err(Error::PeerDied { .. })),
        "barrier with a dead rank: {r:?}"
    );
    step("survivors' own traffic");
    let peers: Vec<Rank> = (0..n).filter(|&r| r != victim && r != me).collect();
    for &p in &peers {
        let out = pattern(me as u64 * 100 + p as u64, BIG + 7);
        let mut inb = vec![0u8; BIG + 7];
        c.sendrecv(&out, p, 11, &mut inb, p, 11).map_err(e)?;
        ensure!(
            inb == pattern(p as u64 * 100 + me as u64, BIG + 7),
            "data from rank {p} corrupted"
        );
    }
    Ok(())
}

/// `uintr-refused`: a handler already registered on this thread makes `init`'s own
/// registration fail (EBUSY); `init` must say so.
fn case_uintr_refused() -> R {
    use tocsin::interrupt::uintr;
    if let Err(why) = uintr::support().require() {
        println!("uintr-refused: skipped: {why}");
        return Ok(());
    }
    step("registering a handler before init");
    uintr::register_handler().map_err(|e| format!("first registration: {e}"))?;
    step("init");
    let r = tocsin::init();
    uintr::unregister_handler();
    match r {
        Err(Error::Unsupported(m))
            if m.contains("uintr_register_handler") && m.contains("EBUSY") =>
        {
            println!("uintr-refused: init said: {m}");
            Ok(())
        }
        Err(e) => Err(format!(
            "init failed, but not with the refused registration: {e}"
        )),
        Ok(_) => Err("init succeeded although the thread already had a handler".into()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let name = args
        .case
        .to_possible_value()
        .map_or_else(|| format!("{:?}", args.case), |v| v.get_name().to_owned());
    report::set_case(&name);
    report::start_watchdog(Duration::from_secs(args.timeout), String::new);
    if args.case == Case::Phases && args.die_at == Phase::Startup {
        let rank: Option<u32> = std::env::var("PMI_RANK").ok().and_then(|r| r.parse().ok());
        if rank == Some(args.victim) {
            die_now();
        }
    }
    if args.case == Case::UintrRefused {
        return report::finish(case_uintr_refused());
    }
    step("init");
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL {name}: init: {e}");
            return ExitCode::FAILURE;
        }
    };
    report::set_rank(&comm);
    report::finish(match args.case {
        Case::WaitAnyDead => case_wait_any_dead(&comm),
        Case::Manager => case_manager(&comm),
        Case::Cancel => case_cancel(&comm),
        Case::ScopePanic => case_scope_panic(&comm),
        Case::ScopePanicAbort => case_scope_panic_abort(&comm),
        Case::DeadDeepRing => case_dead_deep_ring(&comm, args.count),
        Case::FullRingSleeps => case_full_ring_sleeps(&comm),
        Case::DeepRing => case_deep_ring(&comm, args.count),
        Case::Phases => case_phases(&comm, args.die_at, args.victim),
        Case::UintrRefused => unreachable!("handled before init"),
    })
}
