//! `tocsin-pmi-check`: a small rank program exercising `tocsin::pmi`, for launcher tests.
//!
//! Usage: `tocsin-pmi-check MODE [ARGS…]`, started by `tocsin run` or `mpiexec.hydra`:
//! - `kvs`: put `key<rank>=val<rank>`, barrier, get and check every rank's key, print
//!   `rank R/N: kvs ok`, finalize.
//! - `singleton`: print `singleton` when no launcher is present, else `rank R/N`.
//! - `info`: print rank, size, KVS name, universe size, appnum and `TOCSIN_BOUND_CORE`.
//! - `mapping`: print `mapping rank=R size=N node=X map=A,B,… host=H slurm_nodeid=… \
//!   slurmd_nodename=…` (`map` is `PMI_process_mapping` parsed, `none` if not published;
//!   the Slurm variables are `-` when unset), then finalize.
//! - `exit-if RANK CODE [SECS]`: after a barrier, rank RANK exits with CODE; the others
//!   sleep SECS (30).
//! - `kill-self RANK [SECS]`: after a barrier, rank RANK kills itself with SIGKILL; the
//!   others sleep SECS.
//! - `sleep SECS`: after a barrier (then rank 0 prints `all started`), every rank sleeps.
//! - `barrier-exit RANK CODE`: rank RANK exits with CODE without entering the barrier the
//!   others wait in.
//! - `abort RANK CODE`: rank RANK calls PMI abort with CODE; the others wait in a barrier.
//! - `echo`: one line on stdout, one on stderr, and an unterminated stdout fragment.
//! - `shm`: create a POSIX shared-memory object, publish its name under
//!   `tocsin.shm.posix.<rank>`, barrier, print `shm R NAME`, exit without unlinking it.
//!
//! Modes that sleep first print `pid R PID` so a test can check the process is gone.

use std::process::ExitCode;
use std::time::Duration;

use tocsin::pmi::Pmi;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tocsin-pmi-check: {msg}");
    ExitCode::from(100)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str, default: Option<T>) -> T {
    match args.get(i) {
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("tocsin-pmi-check: {name} must be a number, got {s:?}");
            std::process::exit(100)
        }),
        None => default.unwrap_or_else(|| {
            eprintln!("tocsin-pmi-check: missing argument {name}");
            std::process::exit(100)
        }),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().cloned() else {
        return fail("usage: tocsin-pmi-check MODE [ARGS…] (see the source for modes)");
    };
    let pmi = match Pmi::from_env() {
        Ok(p) => p,
        Err(e) => return fail(format!("PMI init failed: {e}")),
    };
    if mode == "singleton" {
        match &pmi {
            None => println!("singleton"),
            Some(p) => println!("rank {}/{}", p.rank(), p.size()),
        }
        return ExitCode::SUCCESS;
    }
    let Some(mut pmi) = pmi else {
        return fail(format!(
            "mode {mode} needs a PMI launcher (PMI_FD or PMI_PORT)"
        ));
    };
    let (rank, size) = (pmi.rank(), pmi.size());
    let print_pid = || println!("pid {rank} {}", std::process::id());
    let sleep = |secs: u64| std::thread::sleep(Duration::from_secs(secs));

    let result: Result<(), String> = (|| {
        match mode.as_str() {
            "kvs" => {
                pmi.put(&format!("key{rank}"), &format!("val{rank}"))
                    .map_err(|e| e.to_string())?;
                pmi.barrier().map_err(|e| e.to_string())?;
                for r in 0..size {
                    let v = pmi.get(&format!("key{r}")).map_err(|e| e.to_string())?;
                    if v != format!("val{r}") {
                        return Err(format!("key{r} = {v:?}, expected val{r}"));
                    }
                }
                println!("rank {rank}/{size}: kvs ok");
            }
            "info" => {
                let universe = pmi.universe_size().map_err(|e| e.to_string())?;
                let appnum = pmi.appnum().map_err(|e| e.to_string())?;
                println!(
                    "rank={rank} size={size} kvsname={} universe={universe} appnum={appnum} \
                     bound_core={}",
                    pmi.kvsname(),
                    std::env::var("TOCSIN_BOUND_CORE").unwrap_or_else(|_| "none".into())
                );
            }
            "mapping" => {
                let map = match pmi.process_mapping().map_err(|e| e.to_string())? {
                    Some(m) => m.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                    None => "none".into(),
                };
                let node = map
                    .split(',')
                    .nth(rank as usize)
                    .unwrap_or("none")
                    .to_owned();
                let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "?".into());
                println!(
                    "mapping rank={rank} size={size} node={node} map={map} host={host} \
                     slurm_nodeid={} slurmd_nodename={}",
                    env("SLURM_NODEID"),
                    env("SLURMD_NODENAME")
                );
            }
            "exit-if" | "kill-self" => {
                let target: u32 = arg(&args, 1, "RANK", None);
                let (code, secs) = if mode == "exit-if" {
                    (arg(&args, 2, "CODE", None), arg(&args, 3, "SECS", Some(30)))
                } else {
                    (0u8, arg(&args, 2, "SECS", Some(30)))
                };
                print_pid();
                // Every rank has printed its pid before any of them dies.
                pmi.barrier().map_err(|e| e.to_string())?;
                if rank == target {
                    if mode == "kill-self" {
                        // SAFETY: raise has no memory-safety preconditions.
                        unsafe { libc::raise(libc::SIGKILL) };
                    }
                    std::process::exit(code.into());
                }
                sleep(secs);
            }
            "sleep" => {
                let secs = arg(&args, 1, "SECS", None);
                print_pid();
                pmi.barrier().map_err(|e| e.to_string())?;
                if rank == 0 {
                    println!("all started");
                }
                sleep(secs);
            }
            "barrier-exit" => {
                let target: u32 = arg(&args, 1, "RANK", None);
                let code: u8 = arg(&args, 2, "CODE", None);
                print_pid();
                if rank == target {
                    std::process::exit(code.into());
                }
                pmi.barrier().map_err(|e| e.to_string())?;
            }
            "abort" => {
                let target: u32 = arg(&args, 1, "RANK", None);
                let code: i32 = arg(&args, 2, "CODE", None);
                print_pid();
                if rank == target {
                    pmi.abort(code, "test abort from tocsin-pmi-check")
                        .map_err(|e| e.to_string())?;
                    sleep(30);
                    return Err("still alive 30 s after PMI abort".into());
                }
                pmi.barrier().map_err(|e| e.to_string())?;
            }
            "echo" => {
                println!("hello from rank {rank}");
                eprintln!("warning from rank {rank}");
                print!("tail {rank}");
            }
            "shm" => {
                let name = format!("/tocsin-check-{}-{rank}", std::process::id());
                let cname = std::ffi::CString::new(name.clone()).expect("no NUL");
                // SAFETY: `cname` is a valid NUL-terminated string.
                let fd =
                    unsafe { libc::shm_open(cname.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600) };
                if fd < 0 {
                    return Err(format!(
                        "shm_open {name}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                // SAFETY: `fd` was just opened by us and is closed once.
                unsafe { libc::close(fd) };
                pmi.put(&format!("tocsin.shm.posix.{rank}"), &name)
                    .map_err(|e| e.to_string())?;
                pmi.barrier().map_err(|e| e.to_string())?;
                println!("shm {rank} {name}");
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(())
    })();
    if let Err(e) = result {
        return fail(format!("rank {rank}: {mode}: {e}"));
    }
    if let Err(e) = pmi.finalize() {
        return fail(format!("rank {rank}: finalize: {e}"));
    }
    ExitCode::SUCCESS
}
