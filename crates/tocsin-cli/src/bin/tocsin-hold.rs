//! `tocsin-hold`: a rank program for the robustness tests of the bootstrap and of degraded
//! kernels (`tests/posix_shm.rs`, `tests/sigpending.rs`, `tests/nocma.rs`).
//!
//! Usage: `tocsin run -n N -- tocsin-hold [OPTIONS]` (or under `mpiexec.hydra`). Each rank:
//! 1. writes its pid to `<pid-dir>/pid.<rank>` (rank from `PMI_RANK`, before `init`);
//! 2. if it is `--act-rank`: waits for `--act-when` (a file) to exist, if given, then sleeps
//!    `--sleep-before-init` seconds, then exits (`--exit-before-init CODE`) or kills itself
//!    with SIGKILL (`--kill-before-init`) if asked; every other rank goes straight on, so
//!    rank 0 waits inside the bootstrap meanwhile;
//! 3. calls `tocsin::init`, writes `<pid-dir>/init.<rank>`; with `--replace-handler` or
//!    `--block-signal` takes tocsin's signal (`TOCSIN_SIGNAL`) back as an application
//!    might; with `--stall-ms`, each rank in turn sleeps while the others wait;
//! 4. exchanges `--count` messages with every other rank (sizes cycling up to `--max-bytes`,
//!    contents derived from source, destination and index, each with a checksum in its
//!    first 8 bytes) and checks every byte;
//! 5. with `--signalfd N` (which blocked `SIGRTMIN+3` and opened a signalfd for it before
//!    `init`): sends itself N of that signal and checks the signalfd got each one;
//! 6. sleeps `--hold` seconds, then prints `ok hold rank R/N: M messages, B bytes checked`.
//!
//! Failures print `FAIL hold rank R: why` on stderr and exit 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Command-line options; see the module documentation.
#[derive(Parser, Debug)]
#[command(about = "Rank program for bootstrap and degraded-kernel tests")]
struct Opts {
    /// Directory for the `pid.R` and `init.R` marker files.
    #[arg(long)]
    pid_dir: Option<PathBuf>,
    /// The rank that waits, exits or kills itself before `init`.
    #[arg(long)]
    act_rank: Option<u32>,
    /// The acting rank waits for this file to exist first.
    #[arg(long)]
    act_when: Option<PathBuf>,
    /// Seconds the acting rank sleeps before `init`.
    #[arg(long, default_value_t = 0.0)]
    sleep_before_init: f64,
    /// The acting rank exits with this code instead of calling `init`.
    #[arg(long)]
    exit_before_init: Option<u8>,
    /// The acting rank kills itself with SIGKILL instead of calling `init`.
    #[arg(long)]
    kill_before_init: bool,
    /// Messages from every rank to every other rank.
    #[arg(long, default_value_t = 0)]
    count: usize,
    /// Largest message, bytes (sizes cycle through 8, 1 KiB, 16 KiB, 64 KiB + 1, and this).
    #[arg(long, default_value_t = 256 << 10)]
    max_bytes: usize,
    /// Seconds every rank sleeps after the exchange.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Before `init`, block `SIGRTMIN+3` and read it through a `signalfd` (as an
    /// application that owns that signal); after the exchange, send this many of it to the
    /// process and check that the signalfd gets every one.
    #[arg(long, default_value_t = 0)]
    signalfd: usize,
    /// After `init`, install the application's own handler for the signal named by
    /// `TOCSIN_SIGNAL` (a number), replacing tocsin's.
    #[arg(long)]
    replace_handler: bool,
    /// After `init`, block the signal named by `TOCSIN_SIGNAL` (a number) in this thread.
    #[arg(long)]
    block_signal: bool,
    /// After `init`, each rank in turn sleeps this long while the others wait in a barrier
    /// (so that every rank waits longer than the liveness period).
    #[arg(long, default_value_t = 0)]
    stall_ms: u64,
}

extern "C" fn app_handler(_: libc::c_int) {}

/// The application takes `TOCSIN_SIGNAL` back after `init`: its own handler, or blocks it.
fn steal_signal(o: &Opts) -> Result<(), String> {
    if !o.replace_handler && !o.block_signal {
        return Ok(());
    }
    let s: i32 = std::env::var("TOCSIN_SIGNAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("--replace-handler/--block-signal need TOCSIN_SIGNAL=<number>")?;
    // SAFETY: a valid action / a local sigset for this thread's mask.
    unsafe {
        if o.replace_handler {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = app_handler as *const () as usize;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(s, &act, std::ptr::null_mut()) != 0 {
                return Err(format!("sigaction({s}) failed"));
            }
        }
        if o.block_signal {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, s);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }
    Ok(())
}

/// Blocks `SIGRTMIN+3` in this thread and opens a non-blocking signalfd for it.
fn open_signalfd() -> std::io::Result<i32> {
    // SAFETY: a local sigset; pthread_sigmask and signalfd on it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGRTMIN() + 3);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// Sends `n` `SIGRTMIN+3` to this process (one at a time, each read back before the next,
/// so that `RLIMIT_SIGPENDING` does not matter) and returns how many the signalfd got.
fn signalfd_round(fd: i32, n: usize) -> usize {
    let mut got = 0;
    for i in 0..n {
        let v = libc::sigval {
            sival_ptr: (1000 + i) as *mut libc::c_void,
        };
        // SAFETY: queueing a signal to ourselves with an integer payload.
        if unsafe { libc::sigqueue(libc::getpid(), libc::SIGRTMIN() + 3, v) } != 0 {
            continue;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            // SAFETY: a zeroed signalfd_siginfo buffer of the right size.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let sz = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading at most `sz` bytes into `si`.
            let r = unsafe { libc::read(fd, (&mut si as *mut libc::signalfd_siginfo).cast(), sz) };
            if r == sz as isize {
                if si.ssi_signo as i32 == libc::SIGRTMIN() + 3 && si.ssi_ptr == (1000 + i) as u64 {
                    got += 1;
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn fail(rank: u32, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("FAIL hold rank {rank}: {msg}");
    ExitCode::from(1)
}

fn marker(dir: &Option<PathBuf>, what: &str, rank: u32) {
    if let Some(d) = dir {
        let tmp = d.join(format!(".{what}.{rank}"));
        let _ = std::fs::write(&tmp, std::process::id().to_string());
        let _ = std::fs::rename(&tmp, d.join(format!("{what}.{rank}")));
    }
}

fn wait_for(path: &std::path::Path) {
    while !path.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Size of message `i` (of `max` at most).
fn size_of(i: usize, max: usize) -> usize {
    [8, 1 << 10, 16 << 10, (64 << 10) + 1, max][i % 5]
        .min(max)
        .max(8)
}

/// FNV-1a of `b`.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes of message `i` from `src` to `dst`: a checksum of the body, then the body.
fn message(src: u32, dst: u32, i: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = (src as u64) << 40 ^ (dst as u64) << 20 ^ i as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for b in v[8..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let c = fnv(&v[8..]);
    v[..8].copy_from_slice(&c.to_le_bytes());
    v
}

fn exchange(comm: &tocsin::Comm, o: &Opts) -> Result<(usize, usize), String> {
    let (me, n) = (comm.rank(), comm.size());
    let (mut msgs, mut bytes) = (0, 0);
    for i in 0..o.count {
        let len = size_of(i, o.max_bytes);
        let tag = (i % 1000) as i32;
        let outs: Vec<(u32, Vec<u8>)> = (0..n)
            .filter(|&p| p != me)
            .map(|p| (p, message(me, p, i, len)))
            .collect();
        let mut ins: Vec<(u32, Vec<u8>)> = (0..n)
            .filter(|&p| p != me)
            .map(|p| (p, vec![0xEEu8; len]))
            .collect();
        comm.scope(|s| -> Result<(), String> {
            let mut reqs = Vec::new();
            for (p, b) in ins.iter_mut() {
                reqs.push(
                    s.irecv(b.as_mut_slice(), *p, tag)
                        .map_err(|e| e.to_string())?,
                );
            }
            for (p, b) in &outs {
                reqs.push(s.isend(b.as_slice(), *p, tag).map_err(|e| e.to_string())?);
            }
            for st in tocsin::wait_all(reqs).map_err(|e| format!("message {i}: {e}"))? {
                let _ = st;
            }
            Ok(())
        })?;
        for (p, b) in &ins {
            let want = message(*p, me, i, len);
            if *b != want {
                let at = b.iter().zip(&want).position(|(a, w)| a != w).unwrap_or(0);
                return Err(format!(
                    "message {i} from rank {p} ({len} bytes) differs at byte {at}"
                ));
            }
            if u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) != fnv(&b[8..]) {
                return Err(format!("message {i} from rank {p}: bad checksum"));
            }
            msgs += 1;
            bytes += len;
        }
    }
    Ok((msgs, bytes))
}

fn main() -> ExitCode {
    let o = Opts::parse();
    let rank: u32 = std::env::var("PMI_RANK")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    marker(&o.pid_dir, "pid", rank);
    if o.act_rank == Some(rank) {
        if let Some(f) = &o.act_when {
            wait_for(f);
        }
        std::thread::sleep(Duration::from_secs_f64(o.sleep_before_init));
        if o.kill_before_init {
            // SAFETY: raising SIGKILL on ourselves.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        if let Some(c) = o.exit_before_init {
            return ExitCode::from(c);
        }
    }
    let sfd = if o.signalfd > 0 {
        match open_signalfd() {
            Ok(fd) => Some(fd),
            Err(e) => return fail(rank, format!("signalfd: {e}")),
        }
    } else {
        None
    };
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => return fail(rank, format!("init: {e}")),
    };
    marker(&o.pid_dir, "init", rank);
    if let Err(e) = steal_signal(&o) {
        return fail(rank, e);
    }
    if o.stall_ms > 0 {
        for r in 0..comm.size() {
            if r == comm.rank() {
                std::thread::sleep(Duration::from_millis(o.stall_ms));
            }
            if let Err(e) = comm.barrier() {
                return fail(rank, format!("stall barrier: {e}"));
            }
        }
    }
    let (msgs, bytes) = match exchange(&comm, &o) {
        Ok(v) => v,
        Err(e) => return fail(rank, e),
    };
    if let Some(fd) = sfd {
        let got = signalfd_round(fd, o.signalfd);
        println!(
            "signalfd rank {rank}: {got} of {} SIGRTMIN+3 delivered",
            o.signalfd
        );
        if got != o.signalfd {
            return fail(
                rank,
                format!("the signalfd got {got} of {} SIGRTMIN+3", o.signalfd),
            );
        }
    }
    std::thread::sleep(Duration::from_secs_f64(o.hold));
    if let Err(e) = comm.barrier() {
        return fail(rank, format!("final barrier: {e}"));
    }
    println!(
        "ok hold rank {}/{}: {msgs} messages, {bytes} bytes checked",
        comm.rank(),
        comm.size()
    );
    ExitCode::SUCCESS
}
