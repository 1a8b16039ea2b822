//! The running job: spawning the ranks and the single-threaded event loop that serves their
//! PMI requests, forwards their output, forwards signals, reaps them and ends the job when
//! one fails.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::Pid;

use super::server::{Action, Server, MAX_REQUEST};
use super::signals::Signals;
use super::{binding, Bind, LaunchError, LaunchSpec};

/// Time the ranks get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);
/// Time to keep draining output pipes after the last rank exited (descendants may hold them).
const DRAIN: Duration = Duration::from_millis(500);
/// An output line longer than this is forwarded in pieces.
const MAX_OUTPUT_LINE: usize = 64 * 1024;

/// The launcher's end of a rank's PMI socket.
struct Conn {
    fd: OwnedFd,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

/// One of a rank's output pipes.
struct Output {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// The last piece forwarded did not end a line.
    mid_line: bool,
    is_err: bool,
}

/// A started rank.
struct RankProc {
    child: Child,
    pid: i32,
    pidfd: Option<OwnedFd>,
    conn: Option<Conn>,
    out: Option<Output>,
    err: Option<Output>,
    status: Option<ExitStatus>,
}

/// Where a polled descriptor belongs.
#[derive(Clone, Copy)]
enum Src {
    Signal,
    Pmi(usize),
    Out(usize),
    Err(usize),
    Exit,
}

struct Job {
    ranks: Vec<RankProc>,
    server: Server,
    tag: bool,
    /// Leave the other ranks running when one fails.
    keep_going: bool,
    /// The job's exit code, set by the first failure, abort, deadlock or signal.
    outcome: Option<i32>,
    /// When to SIGKILL the ranks still alive.
    kill_at: Option<Instant>,
    /// A SIGINT/SIGTERM was received and forwarded.
    interrupted: bool,
}

/// Starts the ranks and runs the job to its end; returns its exit code.
pub(super) fn run(spec: &LaunchSpec, program: &Path) -> Result<i32, LaunchError> {
    let signals = Signals::subscribe().map_err(|e| LaunchError::Io {
        context: "installing the SIGINT/SIGTERM forwarding handlers".into(),
        source: e,
    })?;
    let mut job = Job::start(spec, program)?;
    job.event_loop(&signals);
    job.cleanup_shm();
    Ok(job.outcome.unwrap_or(0))
}

fn io_err(context: impl Into<String>) -> impl FnOnce(Errno) -> LaunchError {
    let context = context.into();
    move |e| LaunchError::Io {
        context,
        source: e.into(),
    }
}

fn set_nonblocking(fd: RawFd) -> Result<(), LaunchError> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io_err("fcntl(F_GETFL)"))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(io_err("fcntl(F_SETFL, O_NONBLOCK)"))?;
    Ok(())
}

/// A pollable descriptor that becomes readable when `pid` exits (None if unsupported).
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A KVS name unlikely to collide between jobs.
fn make_kvsname() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tocsin_kvs_{}_{}_{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Job {
    fn start(spec: &LaunchSpec, program: &Path) -> Result<Job, LaunchError> {
        let n = spec.n;
        let ncores = super::binding::core_count();
        if n as usize > ncores && std::env::var_os("TOCSIN_OVERSUBSCRIBED").is_none() {
            // The ranks detect it too (MPI_LOCALNRANKS above the online CPUs); say so once.
            eprintln!(
                "tocsin run: {n} ranks on {ncores} cores: oversubscribed, so waiting ranks yield \
                 their core (poll) or sleep without spinning (block and up)"
            );
        }
        let cores = match spec.bind {
            Bind::None => None,
            Bind::Core => match binding::cores() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("tocsin run: warning: cannot bind ranks to cores ({e}); running them unbound");
                    None
                }
            },
        };
        let mut job = Job {
            ranks: Vec::with_capacity(n as usize),
            server: Server::new(n, make_kvsname()),
            tag: spec.tag_output,
            keep_going: spec.keep_going,
            outcome: None,
            kill_at: None,
            interrupted: false,
        };
        for r in 0..n {
            match job.spawn_rank(spec, program, r, cores) {
                Ok(p) => job.ranks.push(p),
                Err(e) => {
                    job.kill_all(Signal::SIGKILL);
                    for p in &mut job.ranks {
                        let _ = p.child.wait();
                    }
                    return Err(e);
                }
            }
        }
        Ok(job)
    }

    fn spawn_rank(
        &self,
        spec: &LaunchSpec,
        program: &Path,
        r: u32,
        cores: Option<&'static [Vec<usize>]>,
    ) -> Result<RankProc, LaunchError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io_err(format!("creating the PMI socket pair of rank {r}")))?;
        let mut cmd = Command::new(program);
        cmd.arg0(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("PMI_PORT")
            .env_remove("PMI_ID")
            .env_remove("TOCSIN_BOUND_CORE");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child_fd = theirs.as_raw_fd();
        cmd.env("PMI_FD", child_fd.to_string())
            .env("PMI_RANK", r.to_string())
            .env("PMI_SIZE", spec.n.to_string())
            .env("MPI_LOCALRANKID", r.to_string())
            .env("MPI_LOCALNRANKS", spec.n.to_string())
            .process_group(0);
        let core = cores.map(|c| (r as usize) % c.len());
        let mask = core.map(|ci| binding::cpu_set(&cores.unwrap_or_default()[ci]));
        if let Some(ci) = core {
            cmd.env("TOCSIN_BOUND_CORE", ci.to_string());
        }
        let warning = format!(
            "tocsin run: warning: could not bind rank {r} to core {}; it runs unbound\n",
            core.unwrap_or(0)
        );
        // SAFETY: getpid has no preconditions.
        let launcher_pid = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe system calls (fcntl, prctl, getppid, sched_setaffinity, write,
        // _exit) on data prepared before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // The PMI socket is the one descriptor the program must inherit.
                if libc::fcntl(child_fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the launcher dies without cleaning up, do not outlive it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != launcher_pid {
                    libc::_exit(1);
                }
                if let Some(mask) = &mask {
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), mask) != 0
                    {
                        libc::write(2, warning.as_ptr().cast(), warning.len());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| LaunchError::Spawn {
            rank: r,
            program: spec.program.clone(),
            source: e,
        })?;
        drop(theirs);
        let pid = child.id() as i32;
        let out = child.stdout.take().map(|s| Output {
            fd: OwnedFd::from(s),
            buf: Vec::new(),
            mid_line: false,
            is_err: false,
        });
        let err = child.stderr.take().map(|s| Output {
            fd: OwnedFd::from(s),
            buf: Vec::new(),
            mid_line: false,
            is_err: true,
        });
        let proc_ = RankProc {
            child,
            pid,
            pidfd: pidfd_open(pid),
            conn: Some(Conn {
                fd: ours,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
            }),
            out,
            err,
            status: None,
        };
        let fds = [
            proc_.conn.as_ref().map(|c| c.fd.as_raw_fd()),
            proc_.out.as_ref().map(|o| o.fd.as_raw_fd()),
            proc_.err.as_ref().map(|o| o.fd.as_raw_fd()),
        ];
        let mut proc_ = proc_;
        for fd in fds.into_iter().flatten() {
            if let Err(e) = set_nonblocking(fd) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = proc_.child.wait();
                return Err(e);
            }
        }
        Ok(proc_)
    }

    /// Sends `sig` to the process group of every rank not yet reaped.
    fn kill_all(&self, sig: Signal) {
        for p in &self.ranks {
            if p.status.is_none() {
                // The group is still valid: its leader is at worst an unreaped zombie.
                let _ = killpg(Pid::from_raw(p.pid), sig);
            }
        }
    }

    /// Ends the job with `code` (if no earlier outcome) and starts terminating the ranks.
    fn fail(&mut self, code: i32) {
        if self.outcome.is_none() {
            self.outcome = Some(code);
        }
        self.kill_all(Signal::SIGTERM);
        if self.kill_at.is_none() {
            self.kill_at = Some(Instant::now() + GRACE);
        }
    }

    fn alive(&self) -> usize {
        self.ranks.iter().filter(|p| p.status.is_none()).count()
    }

    fn event_loop(&mut self, signals: &Signals) {
        let all_pidfds = self.ranks.iter().all(|p| p.pidfd.is_some());
        let mut drain_until: Option<Instant> = None;
        loop {
            self.reap();
            self.check_stuck_barrier();
            let now = Instant::now();
            if let Some(k) = self.kill_at {
                if now >= k {
                    self.kill_all(Signal::SIGKILL);
                    self.kill_at = None;
                }
            }
            let outputs_open = self
                .ranks
                .iter()
                .any(|p| p.out.is_some() || p.err.is_some());
            if self.alive() == 0 {
                let until = *drain_until.get_or_insert(now + DRAIN);
                if !outputs_open || now >= until {
                    break;
                }
            }

            let mut timeout = Duration::from_millis(if all_pidfds { 1000 } else { 50 });
            for d in [self.kill_at, drain_until].into_iter().flatten() {
                timeout = timeout.min(d.saturating_duration_since(now));
            }

            let mut srcs: Vec<Src> = Vec::new();
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            fds.push(PollFd::new(signals.fd(), PollFlags::POLLIN));
            srcs.push(Src::Signal);
            for (i, p) in self.ranks.iter().enumerate() {
                if let Some(c) = &p.conn {
                    let mut ev = PollFlags::POLLIN;
                    if !c.wbuf.is_empty() {
                        ev |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.fd.as_fd(), ev));
                    srcs.push(Src::Pmi(i));
                }
                if let Some(o) = &p.out {
                    fds.push(PollFd::new(o.fd.as_fd(), PollFlags::POLLIN));
                    srcs.push(Src::Out(i));
                }
                if let Some(o) = &p.err {
                    fds.push(PollFd::new(o.fd.as_fd(), PollFlags::POLLIN));
                    srcs.push(Src::Err(i));
                }
                if p.status.is_none() {
                    if let Some(pf) = &p.pidfd {
                        fds.push(PollFd::new(pf.as_fd(), PollFlags::POLLIN));
                        srcs.push(Src::Exit);
                    }
                }
            }
            let ms = timeout.as_millis().clamp(1, 60_000) as u16;
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("tocsin run: poll failed: {e}; terminating the job");
                    drop(fds);
                    self.fail(1);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            let ready: Vec<Src> = fds
                .iter()
                .zip(&srcs)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, s)| *s)
                .collect();
            drop(fds);

            for src in ready {
                match src {
                    Src::Signal => self.on_signals(signals.take()),
                    Src::Pmi(i) => self.read_pmi(i),
                    Src::Out(i) => self.read_output(i, false),
                    Src::Err(i) => self.read_output(i, true),
                    Src::Exit => {}
                }
            }
            self.flush_pmi();
        }
        // Whatever is left of unterminated lines.
        for i in 0..self.ranks.len() {
            for is_err in [false, true] {
                let slot = if is_err {
                    &mut self.ranks[i].err
                } else {
                    &mut self.ranks[i].out
                };
                if let Some(mut o) = slot.take() {
                    o.finish(i as u32, self.tag);
                }
            }
        }
    }

    fn on_signals(&mut self, sigs: Vec<Signal>) {
        for sig in sigs {
            if !self.interrupted {
                self.interrupted = true;
                eprintln!("tocsin run: received {sig}; forwarding it to the ranks");
                if self.outcome.is_none() {
                    self.outcome = Some(128 + sig as i32);
                }
                self.kill_all(sig);
                if self.kill_at.is_none() {
                    self.kill_at = Some(Instant::now() + GRACE);
                }
            } else {
                eprintln!("tocsin run: received {sig} again; killing the ranks");
                self.kill_all(Signal::SIGKILL);
            }
        }
    }

    /// Reaps every rank that exited; the first failure ends the job.
    fn reap(&mut self) {
        for i in 0..self.ranks.len() {
            if self.ranks[i].status.is_some() {
                continue;
            }
            let st = match self.ranks[i].child.try_wait() {
                Ok(Some(st)) => st,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!(
                        "tocsin run: cannot wait for rank {i} (pid {}): {e}",
                        self.ranks[i].pid
                    );
                    continue;
                }
            };
            self.ranks[i].status = Some(st);
            self.ranks[i].pidfd = None;
            if st.success() || self.outcome.is_some() {
                continue;
            }
            let pid = self.ranks[i].pid;
            let what = describe(st);
            let code = match (st.code(), st.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                (None, None) => 1,
            };
            let others = match (self.alive() > 0, self.keep_going) {
                (false, _) => "",
                (true, false) => "; terminating the other ranks",
                (true, true) => "; --keep-going: the other ranks go on",
            };
            eprintln!("tocsin run: rank {i} (pid {pid}) {what}{others}");
            if self.keep_going {
                self.outcome = Some(code);
            } else {
                self.fail(code);
            }
        }
    }

    /// Ends the job if a PMI barrier can never complete because a rank that left PMI
    /// (closed its connection and exited, or finalized) never entered it.
    fn check_stuck_barrier(&mut self) {
        if self.outcome.is_some() && !self.keep_going {
            return;
        }
        let Some((waiting, blockers)) = self.server.stuck_barrier() else {
            return;
        };
        // Wait for a closed-but-running blocker to exit: its exit status explains more.
        let settled = blockers
            .iter()
            .all(|&b| self.ranks[b as usize].status.is_some() || self.server.finalized(b));
        if !settled {
            return;
        }
        let why: Vec<String> = blockers
            .iter()
            .map(|&b| {
                let p = &self.ranks[b as usize];
                match p.status {
                    Some(st) => format!(
                        "rank {b} (pid {}) {} without entering it",
                        p.pid,
                        describe(st)
                    ),
                    None => format!("rank {b} (pid {}) already called PMI finalize", p.pid),
                }
            })
            .collect();
        let waiting: Vec<String> = waiting.iter().map(u32::to_string).collect();
        eprintln!(
            "tocsin run: the PMI barrier that rank(s) {} wait in can never complete: {}; \
             terminating the job",
            waiting.join(", "),
            why.join(", ")
        );
        self.fail(1);
    }

    fn read_pmi(&mut self, i: usize) {
        let mut closed = false;
        {
            let Some(c) = self.ranks[i].conn.as_mut() else {
                return;
            };
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(c.fd.as_raw_fd(), &mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(k) => c.rbuf.extend_from_slice(&buf[..k]),
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        while let Some(c) = self.ranks[i].conn.as_mut() {
            let Some(pos) = c.rbuf.iter().position(|b| *b == b'\n') else {
                if c.rbuf.len() > MAX_REQUEST {
                    eprintln!(
                        "tocsin run: rank {i} sent a PMI request longer than {MAX_REQUEST} bytes; \
                         closing its PMI connection"
                    );
                    closed = true;
                }
                break;
            };
            let line: Vec<u8> = c.rbuf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..pos]).into_owned();
            tracing::debug!(rank = i, request = %text, "PMI request");
            for action in self.server.handle(i as u32, &text) {
                match action {
                    Action::Reply(r, s) => {
                        if let Some(c) = self.ranks[r as usize].conn.as_mut() {
                            c.wbuf.extend_from_slice(s.as_bytes());
                        }
                    }
                    Action::Warn(w) => eprintln!("tocsin run: {w}"),
                    Action::Abort { rank, code, msg } => {
                        if self.outcome.is_none() {
                            let code = if code == 0 { 1 } else { code };
                            let pid = self.ranks[rank as usize].pid;
                            let msg = if msg.is_empty() {
                                String::new()
                            } else {
                                format!(": {msg}")
                            };
                            eprintln!(
                                "tocsin run: rank {rank} (pid {pid}) called PMI abort with exit \
                                 code {code}{msg}; terminating the job"
                            );
                            self.outcome = Some(code);
                        }
                        self.fail(code);
                    }
                }
            }
        }
        if closed {
            self.ranks[i].conn = None;
            self.server.closed(i as u32);
        }
    }

    fn flush_pmi(&mut self) {
        for i in 0..self.ranks.len() {
            let mut closed = false;
            if let Some(c) = self.ranks[i].conn.as_mut() {
                while !c.wbuf.is_empty() {
                    match send(
                        c.fd.as_raw_fd(),
                        &c.wbuf,
                        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(k) => {
                            c.wbuf.drain(..k);
                        }
                        Err(Errno::EINTR) => continue,
                        Err(Errno::EAGAIN) => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            if closed {
                self.ranks[i].conn = None;
                self.server.closed(i as u32);
            }
        }
    }

    fn read_output(&mut self, i: usize, is_err: bool) {
        let tag = self.tag;
        let slot = if is_err {
            &mut self.ranks[i].err
        } else {
            &mut self.ranks[i].out
        };
        let Some(o) = slot.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16384];
        let mut eof = false;
        // Bounded per wake-up so one chatty rank cannot starve the others.
        for _ in 0..16 {
            match nix::unistd::read(o.fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => o.buf.extend_from_slice(&buf[..k]),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        o.forward(i as u32, tag);
        if eof {
            if let Some(mut o) = slot.take() {
                o.finish(i as u32, tag);
            }
        }
    }

    /// Unlinks the POSIX shared-memory objects the ranks published.
    fn cleanup_shm(&self) {
        for name in self.server.shm_names() {
            let Ok(c) = std::ffi::CString::new(name.as_str()) else {
                continue;
            };
            // SAFETY: `c` is a valid NUL-terminated string.
            if unsafe { libc::shm_unlink(c.as_ptr()) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOENT) {
                    eprintln!("tocsin run: warning: cannot unlink shared memory {name}: {e}");
                }
            }
        }
    }
}

/// "exited with code 3", "was killed by signal 9 (SIGKILL)".
fn describe(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => {
            let name = Signal::try_from(s).map_or_else(|_| "?".to_owned(), |s| s.to_string());
            format!("was killed by signal {s} ({name})")
        }
        (None, None) => format!("ended with status {st}"),
    }
}

impl Output {
    /// Forwards the complete lines in the buffer (and an over-long partial one).
    fn forward(&mut self, rank: u32, tag: bool) {
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            if tag && !self.mid_line {
                out.extend_from_slice(format!("[{rank}] ").as_bytes());
            }
            out.extend_from_slice(&self.buf[start..end]);
            self.mid_line = false;
            start = end;
        }
        self.buf.drain(..start);
        if self.buf.len() >= MAX_OUTPUT_LINE {
            if tag && !self.mid_line {
                out.extend_from_slice(format!("[{rank}] ").as_bytes());
            }
            out.append(&mut self.buf);
            self.mid_line = true;
        }
        self.write(&out);
    }

    /// Forwards what remains at end of stream; a tagged partial line gets a newline.
    fn finish(&mut self, rank: u32, tag: bool) {
        self.forward(rank, tag);
        if self.buf.is_empty() {
            if tag && self.mid_line {
                self.write(b"\n");
            }
            return;
        }
        let mut out = Vec::new();
        if tag && !self.mid_line {
            out.extend_from_slice(format!("[{rank}] ").as_bytes());
        }
        out.append(&mut self.buf);
        if tag {
            out.push(b'\n');
        }
        self.mid_line = false;
        self.write(&out);
    }

    fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Errors (e.g. a closed pipe downstream) only lose output; the job goes on.
        if self.is_err {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(data).and_then(|()| e.flush());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(data).and_then(|()| o.flush());
        }
    }
}
