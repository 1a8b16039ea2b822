//! The reaper of a POSIX shared-memory name (`TOCSIN_SHM=posix`): a tiny detached process
//! that unlinks the job's `/dev/shm` name when rank 0 goes away, however it goes (`SIGKILL`
//! from the launcher, from `mpiexec.hydra` ending a failed job, or from a user).
//!
//! Owns the reaper process and the write end of the pipe it watches. It must not know about
//! segments or PMI: [`Reaper::spawn`] takes the name, [`Drop`] unlinks it.
//!
//! ## Why a process
//! Rank 0 creates the name and unlinks it once every rank has mapped it; until then a rank 0
//! killed with `SIGKILL` cannot clean up, and neither can a launcher that is itself killed
//! (or one, like hydra, that does not know the name). So before creating the name, rank 0
//! forks (twice, so that the reaper is never its child: an application's `wait` never sees
//! it) a process that:
//! 1. starts a new session (`setsid`): a launcher's `killpg` of the rank's group (hydra and
//!    `tocsin run` both kill groups) misses it, and the fork already cleared the rank's
//!    `PR_SET_PDEATHSIG`; it names itself `tocsin-reaper` (as `ps` shows it);
//! 2. keeps only the pipe's read end (on fd 0) and closes every other descriptor, so it holds
//!    none of the job's pipes or sockets (a launcher waiting for the ranks' output or PMI
//!    connections never waits for it), and resets every signal handler to its default;
//! 3. blocks in `read` until end of file, which comes when every copy of the write end is
//!    closed: by rank 0 once it has unlinked the name itself, or by the kernel when rank 0
//!    dies;
//! 4. unlinks `/dev/shm/<name>` (a no-op if rank 0 already did) and exits.
//!
//! Between `fork` and `_exit` both children make only async-signal-safe system calls on
//! data prepared before the fork (no allocation, no lock): the parent may be multi-threaded.
//! The reaper's address space is a copy-on-write image of rank 0 at `init` (nothing is
//! copied; it lives only as long as the bootstrap).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys;

/// Where glibc keeps POSIX shared-memory objects (`shm_open` of `/x` is `/dev/shm/x`).
const SHM_DIR: &str = "/dev/shm";

/// A running reaper for one POSIX shared-memory name. Dropping it unlinks the name (the
/// normal path, and every error path of the bootstrap) and closes the pipe, which makes the
/// reaper exit; if the process dies instead, the kernel closes the pipe and the reaper
/// unlinks the name.
#[derive(Debug)]
pub(crate) struct Reaper {
    name: String,
    /// Write end of the pipe the reaper reads; closed last in `drop`.
    write: Option<OwnedFd>,
}

/// The system calls of the reaper itself, in the grandchild. Never returns.
///
/// # Safety
/// Only in a freshly forked child; `path` is a valid C string and `read_fd` the pipe's read
/// end. Async-signal-safe calls only.
unsafe fn reaper_main(read_fd: i32, path: *const libc::c_char, max_fd: i32) -> ! {
    // SAFETY (whole body): plain system calls on integers and the prepared C string.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, c"tocsin-reaper".as_ptr(), 0, 0, 0);
        // Reset handlers: a signal must not run the application's code in this copy.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for s in 1..=64 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(s, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN
                {
                    libc::sigaction(s, &dfl, std::ptr::null_mut());
                }
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Keep only the read end, on fd 0.
        if read_fd != 0 && libc::dup2(read_fd, 0) != 0 {
            libc::_exit(1);
        }
        if libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32) != 0 {
            for fd in 1..max_fd {
                libc::close(fd);
            }
        }
        let mut b = [0u8; 16];
        loop {
            let n = libc::read(0, b.as_mut_ptr().cast(), b.len());
            if n == 0 {
                break;
            }
            if n < 0 && *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
        libc::unlink(path);
        libc::_exit(0)
    }
}

impl Reaper {
    /// Starts the reaper of POSIX shared-memory name `name` (`/tocsin-…`), before the name
    /// is created.
    ///
    /// # Errors
    /// The OS error of `pipe2` or `fork` (the caller may go on without a reaper: only a
    /// `SIGKILL` during the bootstrap then leaks the name).
    pub(crate) fn spawn(name: &str) -> io::Result<Reaper> {
        let path = CString::new(format!("{SHM_DIR}{name}"))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in shm name"))?;
        // SAFETY: zeroed rlimit is a valid out-parameter.
        let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer.
        let max_fd = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
            rl.rlim_cur.min(65536) as i32
        } else {
            1024
        };
        let mut fds = [0i32; 2];
        // SAFETY: a valid two-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors we own.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let path_ptr = path.as_ptr();
        let read_fd = r.as_raw_fd();
        // SAFETY: fork; the child runs only async-signal-safe calls (see the module doc).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the child; fork again so that the reaper is not rank 0's child.
            unsafe {
                match libc::fork() {
                    0 => reaper_main(read_fd, path_ptr, max_fd),
                    p if p > 0 => libc::_exit(0),
                    _ => libc::_exit(1),
                }
            }
        }
        drop(r);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child; `status` is a valid out-pointer.
            let got = unsafe { libc::waitpid(pid, &mut status, 0) };
            if got == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
                return Err(io::Error::other("the reaper's second fork failed"));
            }
            if got >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break; // ECHILD: an application's SIGCHLD handler reaped it first
            }
        }
        Ok(Reaper {
            name: name.to_owned(),
            write: Some(w),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        sys::shm_unlink(&self.name);
        drop(self.write.take()); // the reaper sees EOF, finds nothing to unlink, exits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn name() -> String {
        let mut r = [0u8; 16];
        sys::random_bytes(&mut r).unwrap();
        let h: String = r.iter().map(|b| format!("{b:02x}")).collect();
        format!("/tocsin-test-{h}")
    }

    fn gone_within(path: &str, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if !Path::new(path).exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        !Path::new(path).exists()
    }

    #[test]
    fn the_reaper_unlinks_when_its_pipe_closes_without_the_owner() {
        let n = name();
        let mut rp = Reaper::spawn(&n).expect("spawn");
        let fd = sys::shm_create(&n, 4096).expect("create");
        let path = format!("{SHM_DIR}{n}");
        assert!(Path::new(&path).exists());
        // What the kernel does when rank 0 dies: the write end closes, nothing else runs.
        let w = rp.write.take().unwrap();
        std::mem::forget(rp);
        drop(w);
        assert!(
            gone_within(&path, Duration::from_secs(10)),
            "{path} left behind by the reaper"
        );
        drop(fd);
    }

    #[test]
    fn dropping_the_reaper_unlinks_the_name() {
        let n = name();
        let rp = Reaper::spawn(&n).expect("spawn");
        let _fd = sys::shm_create(&n, 4096).expect("create");
        let path = format!("{SHM_DIR}{n}");
        drop(rp);
        assert!(!Path::new(&path).exists());
    }
}
