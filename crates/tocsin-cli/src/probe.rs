//! `tocsin probe`: what this machine offers tocsin, one line per item with a yes/no and why.
//!
//! Owns the machine report: user interrupts (the CPU bit, the kernel's `uintr` flag, the
//! library's registration attempt), cross-memory attach (CMA) permission, real-time
//! signals, the futex/eventfd/pidfd/memfd system calls, and the hwloc topology (packages,
//! NUMA nodes, cores, PUs, caches, the cores this process may run on), and the protocol
//! thresholds a job started now would use with where each comes from (a `TOCSIN_*`
//! override, the tuned cache of [`tocsin::tune`], or the built-in default). It also owns
//! [`topology`], the core/NUMA map `tocsin bench notify` places its threads with.
//!
//! The probe only observes: it changes no system setting, issues UINTR system calls only
//! through [`tocsin::interrupt::uintr::support`] (which refuses unless both the CPU and the
//! kernel advertise UINTR), kills the child it starts, and exits 0 even when everything is
//! missing, because a missing feature is a finding, not a failure.

use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::ObjectType;
use hwlocality::Topology;
use serde_json::{json, Map, Value};
use tocsin::interrupt::{signal, uintr};

/// Arguments of `tocsin probe`.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// Print one JSON document instead of the lines.
    #[arg(long)]
    pub json: bool,
}

/// One finding: a name, yes/no, and the reason or the value.
#[derive(Debug, Clone)]
pub struct Item {
    /// Short machine name (`uintr_cpu`, `cma`, …), the key in the JSON document.
    pub name: &'static str,
    /// Whether the feature is there / permitted.
    pub ok: bool,
    /// Why, or what was found, for humans.
    pub detail: String,
    /// Machine-readable extras merged into the item's JSON object.
    pub extra: Map<String, Value>,
}

impl Item {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Item {
        Item {
            name,
            ok,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, v: Value) -> Item {
        self.extra.insert(key.to_owned(), v);
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ok".into(), Value::Bool(self.ok));
        m.insert("detail".into(), Value::String(self.detail.clone()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Entry point of `tocsin probe`: always exits 0.
pub fn main(a: ProbeArgs) -> ExitCode {
    let mut items = uintr_items();
    items.extend(cma_items());
    items.push(rt_signals());
    items.push(sigqueue());
    items.push(futex());
    items.push(eventfd());
    items.push(pidfd_open());
    items.push(memfd_create());
    items.extend(threshold_items());
    let topo = topology();
    items.push(topology_item(&topo));
    let mut text = String::new();
    if a.json {
        let mut m = Map::new();
        for it in &items {
            m.insert(it.name.to_owned(), it.to_json());
        }
        let doc = json!({
            "probe": "tocsin",
            "version": env!("CARGO_PKG_VERSION"),
            "cpu": cpu_name(),
            "kernel": kernel_release(),
            "items": Value::Object(m),
            "topology": topology_json(&topo),
        });
        text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
    } else {
        text += &format!(
            "tocsin probe: {} — Linux {}\n",
            cpu_name(),
            kernel_release()
        );
        for it in &items {
            text += &format!(
                "{:<20} {:<3}  {}\n",
                it.name,
                if it.ok { "yes" } else { "no" },
                it.detail
            );
        }
        if let Ok(t) = &topo {
            for line in topology_lines(t) {
                text += &format!("{:<20}      {line}\n", "");
            }
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = io::Write::write_all(&mut io::stdout().lock(), text.as_bytes());
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// Protocol thresholds

/// The item name of each tuned value.
fn threshold_name(var: &str) -> &'static str {
    match var {
        "TOCSIN_EAGER_THRESHOLD" => "eager_threshold",
        "TOCSIN_CMA" => "cma_rendezvous",
        "TOCSIN_CHUNK_BYTES" => "chunk_bytes",
        _ => "spin_us",
    }
}

/// One item per tuned value: the value a small job started now uses and its source
/// (`env`, `cache` or `default`). Reads the cache, never calibrates.
fn threshold_items() -> Vec<Item> {
    let cfg = match tocsin::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            return vec![Item::new(
                "thresholds",
                false,
                format!("the TOCSIN_* environment is invalid: {e}"),
            )]
        }
    };
    tocsin::tune::effective(&cfg)
        .into_iter()
        .map(|s| {
            let (kind, path) = match &s.source {
                tocsin::tune::Source::Env => ("env", None),
                tocsin::tune::Source::Cache(p) => ("cache", Some(p.display().to_string())),
                tocsin::tune::Source::Default(_) => ("default", None),
            };
            let shown = if s.var == "TOCSIN_EAGER_THRESHOLD" {
                format!(
                    "{}={} (jobs above 9 ranks lower it to fit their rings)",
                    s.var, s.value
                )
            } else if s.var == "TOCSIN_CMA" {
                format!(
                    "{}={} (thread, signal and uintr keep CMA: the waiting side makes the copy)",
                    s.var, s.value
                )
            } else {
                format!("{}={}", s.var, s.value)
            };
            Item::new(
                threshold_name(s.var),
                true,
                format!("{shown}; from {}", s.source),
            )
            .with("value", json!(s.value))
            .with("source", json!(kind))
            .with("var", json!(s.var))
            .with("cache", json!(path))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// CPU identity

/// The CPU vendor and brand strings (CPUID leaves 0 and 0x80000002–4).
pub fn cpu_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        let l0 = __cpuid(0);
        let mut vendor = Vec::with_capacity(12);
        for r in [l0.ebx, l0.edx, l0.ecx] {
            vendor.extend_from_slice(&r.to_le_bytes());
        }
        let vendor = String::from_utf8_lossy(&vendor).into_owned();
        let mut brand = Vec::with_capacity(48);
        if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
            for leaf in 0x8000_0002u32..=0x8000_0004 {
                let r = __cpuid(leaf);
                for x in [r.eax, r.ebx, r.ecx, r.edx] {
                    brand.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        let brand = String::from_utf8_lossy(&brand)
            .trim_matches(char::from(0))
            .trim()
            .to_owned();
        let hv = if __cpuid(1).ecx & (1 << 31) != 0 {
            ", under a hypervisor"
        } else {
            ""
        };
        format!("{brand} ({vendor}{hv})")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_owned()
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------
// UINTR

/// The three UINTR findings: CPU bit, kernel flag, kernel registration.
fn uintr_items() -> Vec<Item> {
    let s = uintr::support();
    let cpu = if s.cpu {
        Item::new(
            "uintr_cpu",
            true,
            "CPUID.(EAX=7,ECX=0):EDX[5] = 1: the CPU implements user interrupts",
        )
    } else {
        Item::new(
            "uintr_cpu",
            false,
            format!(
                "CPUID.(EAX=7,ECX=0):EDX[5] = 0 on {}: UINTR needs an Intel Sapphire Rapids or \
                 later CPU, and under a hypervisor one that exposes the bit",
                cpu_name()
            ),
        )
    };
    let flag = uintr::kernel_flag();
    let kflag = Item::new(
        "uintr_kernel_flag",
        flag,
        if flag {
            "/proc/cpuinfo lists `uintr`: the kernel carries Intel's UINTR patches".to_owned()
        } else {
            "/proc/cpuinfo has no `uintr` flag: the kernel does not enable UINTR (mainline \
             Linux never merged it; it needs Intel's uintr-linux-kernel tree)"
                .to_owned()
        },
    );
    let kernel = match &s.kernel {
        Ok(()) => Item::new(
            "uintr_kernel",
            true,
            "uintr_register_handler (syscall 471) succeeded and was undone",
        ),
        Err(why) => Item::new("uintr_kernel", false, why.clone()),
    };
    let mode = match s.require() {
        Ok(()) => Item::new("uintr_mode", true, "TOCSIN_PROGRESS=uintr can run"),
        Err(e) => Item::new("uintr_mode", false, e.to_string()),
    };
    vec![cpu, kflag, kernel, mode]
}

// ---------------------------------------------------------------------------------------
// CMA

/// A byte at an address that a forked child shares with its parent (same mapping).
static PROBE_BYTE: u8 = 0x5a;

/// Reads one byte at `addr` in process `pid` with `process_vm_readv`.
fn cma_read(pid: libc::pid_t, addr: usize) -> io::Result<u8> {
    let mut b = 0u8;
    let local = libc::iovec {
        iov_base: (&mut b as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: `local` describes one writable byte we own; the kernel checks `remote`.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else if n == 0 {
        Err(io::Error::from_raw_os_error(libc::EFAULT))
    } else {
        Ok(b)
    }
}

/// Interprets a CMA read: `(permitted, explanation)`.
fn cma_verdict(r: &io::Result<u8>) -> (bool, String) {
    match r {
        Ok(v) if *v == PROBE_BYTE => (true, "read 1 byte at a mapped address".into()),
        Ok(v) => (true, format!("read 1 byte (unexpected value {v:#x})")),
        Err(e) => match e.raw_os_error() {
            Some(libc::EFAULT) => (true, "permitted (EFAULT: bad address only)".into()),
            Some(libc::EPERM) => (
                false,
                "forbidden (EPERM: ptrace access mode check failed)".into(),
            ),
            Some(libc::ENOSYS) => (
                false,
                "the kernel has no CMA (ENOSYS: CONFIG_CROSS_MEMORY_ATTACH=n)".into(),
            ),
            _ => (false, format!("failed: {e}")),
        },
    }
}

/// `kernel.yama.ptrace_scope`, if Yama is present.
fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// CMA from parent to a forked child (a descendant), and from the child to its parent (not
/// a descendant: what sibling ranks need), plus Yama's setting.
fn cma_items() -> Vec<Item> {
    let scope = ptrace_scope();
    let scope_item = match scope {
        Some(s) => Item::new(
            "ptrace_scope",
            s <= 1,
            format!(
                "kernel.yama.ptrace_scope = {s} ({})",
                match s {
                    0 => "classic: any process of the same user",
                    1 =>
                        "restricted: descendants only, unless the target calls \
                          prctl(PR_SET_PTRACER) (tocsin's ranks do)",
                    2 => "admin only: CMA between ranks needs CAP_SYS_PTRACE",
                    _ => "no attach at all: CMA between ranks is impossible",
                }
            ),
        )
        .with("value", json!(s)),
        None => Item::new(
            "ptrace_scope",
            true,
            "no Yama LSM (/proc/sys/kernel/yama/ptrace_scope absent): only the classic \
             same-user ptrace check applies",
        )
        .with("value", Value::Null),
    };
    let addr = &PROBE_BYTE as *const u8 as usize;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let e = io::Error::last_os_error();
        return vec![
            Item::new("cma", false, format!("could not test: pipe: {e}")),
            scope_item,
        ];
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: fork; the child only makes async-signal-safe calls (prctl, process_vm_readv,
    // write, pause, _exit) and never returns into Rust code of the parent.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: async-signal-safe calls only, in the child of a fork.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            libc::close(fds[0]);
            let code: i32 = match cma_read(parent, addr) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            let bytes = code.to_ne_bytes();
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: our copy of the write end.
    unsafe { libc::close(fds[1]) };
    if child < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: our read end.
        unsafe { libc::close(fds[0]) };
        return vec![
            Item::new("cma", false, format!("could not test: fork: {e}")),
            scope_item,
        ];
    }
    // The child's report (its read of our memory), with a time limit.
    let mut up = None;
    let mut pfd = libc::pollfd {
        fd: fds[0],
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            let mut b = [0u8; 4];
            // SAFETY: reading into a 4-byte local buffer.
            let r = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 4) };
            if r == 4 {
                let code = i32::from_ne_bytes(b);
                up = Some(if code == 0 {
                    Ok(PROBE_BYTE)
                } else {
                    Err(io::Error::from_raw_os_error(code))
                });
            }
            break;
        }
    }
    let down = cma_read(child, addr);
    // SAFETY: our child, killed then reaped.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        libc::close(fds[0]);
    }
    let (ok_down, why_down) = cma_verdict(&down);
    let down_item = Item::new(
        "cma",
        ok_down,
        format!("process_vm_readv into a forked child: {why_down}"),
    );
    let up_item = match up {
        Some(r) => {
            let (ok, why) = cma_verdict(&r);
            let hint = if !ok && scope == Some(1) {
                " (Yama scope 1: sibling ranks need prctl(PR_SET_PTRACER), which tocsin sets)"
            } else {
                ""
            };
            Item::new(
                "cma_non_descendant",
                ok,
                format!("process_vm_readv from a child into its parent (as between sibling ranks): {why}{hint}"),
            )
        }
        None => Item::new(
            "cma_non_descendant",
            false,
            "could not test: the child did not report within 5 s",
        ),
    };
    vec![down_item, up_item, scope_item]
}

// ---------------------------------------------------------------------------------------
// Signals and system calls

/// The per-user queue of pending signals (`SigQ` in /proc/self/status): a full queue makes
/// every real-time signal send of this user fail with EAGAIN.
fn sigqueue() -> Item {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let q = status
        .lines()
        .find_map(|l| l.strip_prefix("SigQ:"))
        .and_then(|v| {
            let (a, b) = v.trim().split_once('/')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        });
    match q {
        Some((n, max)) => {
            let full = n >= max;
            Item::new(
                "signal_queue",
                !full && n * 10 < max * 9,
                format!(
                    "{n} of {max} signals queued for this user (RLIMIT_SIGPENDING){}",
                    if full {
                        ": FULL, every real-time signal send fails with EAGAIN until other \
                         processes of this user take theirs"
                    } else if n * 10 >= max * 9 {
                        ": nearly full, real-time signal sends may fail with EAGAIN"
                    } else {
                        ""
                    }
                ),
            )
            .with("queued", json!(n))
            .with("limit", json!(max))
        }
        None => Item::new(
            "signal_queue",
            true,
            "SigQ not found in /proc/self/status (not checked)",
        ),
    }
}

fn rt_signals() -> Item {
    let (lo, hi) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let n = hi - lo + 1;
    match signal::pick_free_signal() {
        Ok(s) => Item::new(
            "rt_signals",
            n > 3,
            format!(
                "SIGRTMIN..SIGRTMAX = {lo}..{hi} ({n} signals); first free from SIGRTMIN+3: {s} \
                 (SIGRTMIN+{})",
                s - lo
            ),
        )
        .with("sigrtmin", json!(lo))
        .with("sigrtmax", json!(hi))
        .with("free", json!(s)),
        Err(e) => Item::new(
            "rt_signals",
            false,
            format!("SIGRTMIN..SIGRTMAX = {lo}..{hi}; {e}"),
        )
        .with("sigrtmin", json!(lo))
        .with("sigrtmax", json!(hi))
        .with("free", Value::Null),
    }
}

/// `Ok(r)` if the raw system call returned `r >= 0`, else the error.
fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn explain_errno(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => format!("not in this kernel (ENOSYS): {e}"),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            format!("refused (seccomp or a security policy): {e}")
        }
        _ => e.to_string(),
    }
}

fn futex() -> Item {
    let word = std::sync::atomic::AtomicU32::new(0);
    // SAFETY: FUTEX_WAKE on a valid, aligned local word; no other pointer is read.
    let r = cvt(unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    });
    match r {
        Ok(n) => Item::new(
            "futex",
            true,
            format!("FUTEX_WAKE (shared) on a local word returned {n}"),
        ),
        Err(e) => Item::new("futex", false, format!("FUTEX_WAKE: {}", explain_errno(&e))),
    }
}

fn eventfd() -> Item {
    // SAFETY: plain flags.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Item::new("eventfd", false, format!("eventfd: {}", explain_errno(&e)));
    }
    let one = 1u64;
    let mut got = 0u64;
    // SAFETY: 8-byte buffers to an eventfd we own, closed after.
    let ok = unsafe {
        let w = libc::write(fd, (&one as *const u64).cast(), 8);
        let r = libc::read(fd, (&mut got as *mut u64).cast(), 8);
        libc::close(fd);
        w == 8 && r == 8 && got == 1
    };
    Item::new(
        "eventfd",
        ok,
        if ok {
            "eventfd created, written and read".to_owned()
        } else {
            "eventfd created but write/read failed".to_owned()
        },
    )
}

fn pidfd_open() -> Item {
    // SAFETY: integer arguments.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) });
    match r {
        Ok(fd) => {
            // pidfd_getfd on ourselves: what uintr mode uses to take a peer's vector fd.
            // SAFETY: integer arguments; fd 0 may be closed, which gives EBADF (still
            // proof that the call exists).
            let g = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, fd, 0, 0) });
            let getfd = match g {
                Ok(dup) => {
                    // SAFETY: a descriptor we just received.
                    unsafe { libc::close(dup as i32) };
                    "pidfd_getfd works too".to_owned()
                }
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                    "pidfd_getfd exists (EBADF on a closed fd 0)".to_owned()
                }
                Err(e) => format!("pidfd_getfd: {}", explain_errno(&e)),
            };
            // SAFETY: the pidfd we opened.
            unsafe { libc::close(fd as i32) };
            Item::new(
                "pidfd_open",
                true,
                format!("pidfd_open on this process succeeded; {getfd}"),
            )
        }
        Err(e) => Item::new(
            "pidfd_open",
            false,
            format!("pidfd_open: {} (Linux ≥ 5.3 needed)", explain_errno(&e)),
        ),
    }
}

fn memfd_create() -> Item {
    let name = c"tocsin-probe";
    // SAFETY: a NUL-terminated name and plain flags.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Item::new(
            "memfd_create",
            false,
            format!("memfd_create: {}", explain_errno(&e)),
        );
    }
    // SAFETY: our descriptor; sized then closed.
    let sized = unsafe {
        let ok = libc::ftruncate(fd, 4096) == 0;
        libc::close(fd);
        ok
    };
    Item::new(
        "memfd_create",
        sized,
        if sized {
            "memfd created and sized"
        } else {
            "memfd created but ftruncate failed"
        },
    )
}

// ---------------------------------------------------------------------------------------
// Topology

/// One core, as hwloc reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreInfo {
    /// hwloc logical index of the core.
    pub logical: usize,
    /// OS indices of its processing units.
    pub pus: Vec<usize>,
    /// Logical index of the NUMA node holding it (0 when hwloc shows none).
    pub numa: usize,
    /// Whether this process may run on at least one of its PUs (`sched_getaffinity`).
    pub usable: bool,
}

/// One kind of cache: `count` caches of `size` bytes at this level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    /// `L1d`, `L1i`, `L2`, `L3`, …
    pub kind: String,
    /// Bytes per cache (0 if unknown).
    pub size: u64,
    /// How many.
    pub count: usize,
}

/// The machine's topology, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topo {
    /// Packages (sockets).
    pub packages: usize,
    /// NUMA nodes.
    pub numa_nodes: usize,
    /// Every core hwloc shows (those outside the allowed set are filtered out by hwloc).
    pub cores: Vec<CoreInfo>,
    /// Processing units (hardware threads).
    pub pus: usize,
    /// Caches, grouped by kind and size.
    pub caches: Vec<CacheInfo>,
    /// OS indices of the PUs this process may run on (`sched_getaffinity`).
    pub affinity: Vec<usize>,
}

/// The PUs the calling thread may run on.
pub fn affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-parameter of the given size.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Reads the topology with hwloc.
///
/// # Errors
/// Why hwloc could not read it.
pub fn topology() -> Result<Topo, String> {
    let topo = Topology::new().map_err(|e| format!("hwloc could not read the topology: {e}"))?;
    let aff = affinity();
    let numas: Vec<Vec<usize>> = topo
        .objects_with_type(ObjectType::NUMANode)
        .map(|n| {
            n.cpuset()
                .map(|s| s.iter_set().map(usize::from).collect())
                .unwrap_or_default()
        })
        .collect();
    let cores: Vec<CoreInfo> = topo
        .objects_with_type(ObjectType::Core)
        .filter_map(|c| {
            let pus: Vec<usize> = c.cpuset()?.iter_set().map(usize::from).collect();
            if pus.is_empty() {
                return None;
            }
            let numa = numas
                .iter()
                .position(|n| pus.iter().any(|p| n.contains(p)))
                .unwrap_or(0);
            let usable = pus.iter().any(|p| aff.contains(p));
            Some(CoreInfo {
                logical: c.logical_index(),
                pus,
                numa,
                usable,
            })
        })
        .collect();
    let kinds = [
        (ObjectType::L1Cache, "L1d"),
        (ObjectType::L1ICache, "L1i"),
        (ObjectType::L2Cache, "L2"),
        (ObjectType::L2ICache, "L2i"),
        (ObjectType::L3Cache, "L3"),
        (ObjectType::L3ICache, "L3i"),
        (ObjectType::L4Cache, "L4"),
        (ObjectType::L5Cache, "L5"),
    ];
    let mut caches: Vec<CacheInfo> = Vec::new();
    for (ty, kind) in kinds {
        for o in topo.objects_with_type(ty) {
            let size = match o.attributes() {
                Some(ObjectAttributes::Cache(c)) => c.size().map_or(0, |s| s.get()),
                _ => 0,
            };
            match caches.iter_mut().find(|c| c.kind == kind && c.size == size) {
                Some(c) => c.count += 1,
                None => caches.push(CacheInfo {
                    kind: kind.to_owned(),
                    size,
                    count: 1,
                }),
            }
        }
    }
    Ok(Topo {
        packages: topo.objects_with_type(ObjectType::Package).count(),
        numa_nodes: numas.len(),
        pus: topo.objects_with_type(ObjectType::PU).count(),
        cores,
        caches,
        affinity: aff,
    })
}

/// `4 KiB`, `2 MiB`, …
fn fmt_bytes(b: u64) -> String {
    const K: u64 = 1024;
    if b == 0 {
        "? B".into()
    } else if b % (K * K * K) == 0 {
        format!("{} GiB", b / (K * K * K))
    } else if b % (K * K) == 0 {
        format!("{} MiB", b / (K * K))
    } else if b % K == 0 {
        format!("{} KiB", b / K)
    } else {
        format!("{b} B")
    }
}

fn usable_cores(t: &Topo) -> Vec<&CoreInfo> {
    t.cores.iter().filter(|c| c.usable).collect()
}

fn topology_item(t: &Result<Topo, String>) -> Item {
    match t {
        Ok(t) => {
            let usable = usable_cores(t);
            Item::new(
                "topology",
                !usable.is_empty(),
                format!(
                    "{} package(s), {} NUMA node(s), {} core(s), {} PU(s); this process may \
                     run on {} core(s)",
                    t.packages,
                    t.numa_nodes,
                    t.cores.len(),
                    t.pus,
                    usable.len()
                ),
            )
        }
        Err(e) => Item::new("topology", false, e.clone()),
    }
}

fn topology_lines(t: &Topo) -> Vec<String> {
    let caches: Vec<String> = t
        .caches
        .iter()
        .map(|c| format!("{} {} x{}", c.kind, fmt_bytes(c.size), c.count))
        .collect();
    let cores: Vec<String> = usable_cores(t)
        .iter()
        .map(|c| {
            let pus: Vec<String> = c.pus.iter().map(|p| p.to_string()).collect();
            format!("core {} (PU {}, NUMA {})", c.logical, pus.join(","), c.numa)
        })
        .collect();
    let aff: Vec<String> = t.affinity.iter().map(|p| p.to_string()).collect();
    vec![
        format!(
            "caches: {}",
            if caches.is_empty() {
                "none reported".to_owned()
            } else {
                caches.join(", ")
            }
        ),
        format!("may run on: {}", cores.join("; ")),
        format!("sched_getaffinity: PUs {}", aff.join(",")),
    ]
}

fn topology_json(t: &Result<Topo, String>) -> Value {
    match t {
        Ok(t) => json!({
            "packages": t.packages,
            "numa_nodes": t.numa_nodes,
            "cores": t.cores.len(),
            "pus": t.pus,
            "caches": t.caches.iter().map(|c| json!({
                "kind": c.kind, "size_bytes": c.size, "count": c.count
            })).collect::<Vec<_>>(),
            "allowed_cores": usable_cores(t).iter().map(|c| json!({
                "core": c.logical, "pus": c.pus, "numa": c.numa
            })).collect::<Vec<_>>(),
            "affinity_pus": t.affinity,
        }),
        Err(e) => json!({ "error": e }),
    }
}
