//! `tocsin-nocma`: runs a program with CMA refused by the kernel, as on a machine where
//! ranks belong to different users or Yama forbids ptrace.
//!
//! Usage: `tocsin run -n 2 -- tocsin-nocma PROGRAM [ARGS…]`. It sets `PR_SET_NO_NEW_PRIVS`,
//! installs a seccomp filter that makes `process_vm_readv` and `process_vm_writev` fail with
//! `EPERM` (every other system call is allowed), and `exec`s PROGRAM, which inherits the
//! filter (as do its children). `tocsin-nocma --check` installs the filter and verifies that
//! a `process_vm_readv` of its own memory now fails with `EPERM` (exit 0) instead of
//! succeeding (exit 1).
//!
//! With `NOCMA_RANKS=1,3` only the listed ranks (by `PMI_RANK`) get the filter, so that CMA
//! is refused one way only.
//!
//! The filter checks the architecture first: system calls of another ABI (x32, i386) are
//! allowed untouched, since their numbers differ.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Offsets in `struct seccomp_data`: `int nr; __u32 arch; …`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The BPF program: EPERM for the two CMA system calls of the native ABI, allow the rest.
fn program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let ret_errno = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA);
    vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        // another ABI: skip to "allow" (4 instructions ahead)
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, 4),
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_process_vm_readv as u32,
            2,
            0,
        ),
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_process_vm_writev as u32,
            1,
            0,
        ),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(BPF_RET | BPF_K, ret_errno),
    ]
}

/// Installs the filter on this process (inherited across `exec` and `fork`).
fn install() -> std::io::Result<()> {
    let mut prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fprog` points to a valid program that outlives the call (the kernel copies
    // it).
    if unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `process_vm_readv` of a local buffer from this very process.
fn cma_self() -> std::io::Result<()> {
    let src = [7u8; 64];
    let mut dst = [0u8; 64];
    let l = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    let r = libc::iovec {
        iov_base: src.as_ptr() as *mut libc::c_void,
        iov_len: src.len(),
    };
    // SAFETY: both iovecs describe live local buffers.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &l, 1, &r, 1, 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!("usage: tocsin-nocma PROGRAM [ARGS…] | tocsin-nocma --check");
        return ExitCode::from(2);
    }
    // NOCMA_RANKS=1,3: only these ranks (PMI_RANK) get the filter; the others run as is.
    let here = std::env::var("NOCMA_RANKS").map_or(true, |list| {
        let rank = std::env::var("PMI_RANK").unwrap_or_default();
        list.split(',').any(|r| r.trim() == rank)
    });
    if here || args[0] == "--check" {
        if let Err(e) = install() {
            eprintln!("tocsin-nocma: installing the seccomp filter: {e}");
            return ExitCode::from(2);
        }
    }
    if args[0] == "--check" {
        return match cma_self() {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                println!("process_vm_readv refused: {e}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("process_vm_readv failed, but not with EPERM: {e}");
                ExitCode::from(1)
            }
            Ok(()) => {
                eprintln!("process_vm_readv succeeded despite the filter");
                ExitCode::from(1)
            }
        };
    }
    let e = Command::new(&args[0]).args(&args[1..]).exec();
    eprintln!("tocsin-nocma: exec {}: {e}", args[0]);
    ExitCode::from(127)
}
