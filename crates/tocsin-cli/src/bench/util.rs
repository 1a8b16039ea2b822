//! Helpers shared by the benchmarks: clocks, the calibrated busy loop, sizes with
//! suffixes, medians, and rank 0's progress bars.
//!
//! The clocks are the ones bench/peers/common.h uses (`CLOCK_MONOTONIC` for wall time,
//! `CLOCK_PROCESS_CPUTIME_ID` for CPU time) so that both sides measure the same thing.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Monotonic wall clock, µs since an arbitrary origin (`CLOCK_MONOTONIC`).
pub fn now_us() -> f64 {
    clock_us(libc::CLOCK_MONOTONIC)
}

/// CPU time consumed by the whole process (every thread), µs (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn cpu_us() -> f64 {
    clock_us(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock_us(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used are always supported
    // on Linux, and on failure `ts` keeps its zero value.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 * 1e-3
}

/// User and system CPU time of the process, ms (`getrusage(RUSAGE_SELF)`).
pub fn rusage_ms() -> (f64, f64) {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is always accepted.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |tv: libc::timeval| tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 * 1e-3;
    (ms(ru.ru_utime), ms(ru.ru_stime))
}

/// A gap between two clock reads of the compute loop longer than this, µs, is time taken
/// from the computation (an iteration takes some 0.03 µs).
pub const STOLEN_GAP_US: f64 = 1.0;

/// Busy loop of `t_us` µs reading the monotonic clock: no tocsin call, no memory traffic,
/// so it neither makes progress nor disturbs the transfer (bench/peers/overlap.c's
/// `compute`). Returns the time taken from it, µs: the sum of the gaps longer than
/// [`STOLEN_GAP_US`] between two consecutive clock reads. That is time the computing thread
/// spent elsewhere — in a signal handler (tocsin's `signal` mode copying data), preempted by
/// another thread (a progress thread on the same core), or in the kernel/hypervisor. The
/// loop still ends at `t_us` of wall time, so the overlap formula cannot see this time.
#[inline(never)]
pub fn compute_stolen(t_us: f64) -> f64 {
    if t_us <= 0.0 {
        return 0.0;
    }
    let mut prev = now_us();
    let end = prev + t_us;
    let mut stolen = 0.0;
    while prev < end {
        let n = now_us();
        if n - prev > STOLEN_GAP_US {
            stolen += n - prev;
        }
        prev = n;
    }
    stolen
}

/// Parses a size with an optional binary suffix: `4096`, `64K`, `4M`, `1G`, `4MiB`, `8kB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suf) = t.split_at(digits);
    let v: usize = num
        .parse()
        .map_err(|_| format!("'{s}': expected a byte count such as 4096, 64K or 4M"))?;
    let shift = match suf.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        _ => return Err(format!("'{s}': unknown suffix '{suf}' (use K, M or G)")),
    };
    v.checked_mul(1usize << shift)
        .ok_or_else(|| format!("'{s}': too large"))
}

/// Largest message size the benchmarks accept (`pingpong --max-size`, `overlap --sizes`),
/// bytes: 1 GiB. Each rank allocates one or two buffers of that size.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// [`parse_size`] for a message size: at most [`MAX_MESSAGE_BYTES`].
pub fn parse_message_size(s: &str) -> Result<usize, String> {
    let v = parse_size(s).map_err(|e| format!("{e}; accepted: 0 to 1G"))?;
    if v > MAX_MESSAGE_BYTES {
        return Err(format!(
            "'{s}' is {v} bytes; message sizes are at most {MAX_MESSAGE_BYTES} bytes (1G)"
        ));
    }
    Ok(v)
}

/// Memory available to new allocations (`MemAvailable` of `/proc/meminfo`), bytes; `None`
/// if unknown.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Checks, before any rank allocates, that the job's buffers (`need` bytes over all ranks)
/// fit in the memory available, so a too-large size is an error instead of an abort.
///
/// # Errors
/// A message naming `option`, the bytes needed and the bytes available.
pub fn check_memory(option: &str, need: u64) -> Result<(), String> {
    match mem_available() {
        Some(avail) if need > avail => Err(format!(
            "{option}: the benchmark buffers need {need} bytes ({}) but only {avail} bytes \
             ({}) of memory are available; choose a smaller size",
            fmt_size(need as usize),
            fmt_size(avail as usize)
        )),
        _ => Ok(()),
    }
}

/// Median of `v` (sorts it); 0 for an empty slice. Even counts average the two middles.
/// The one definition of a median in the benchmarks (the C peers' `median` in
/// `bench/peers/common.h` agrees).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    median_sorted(v)
}

/// [`median`] of an already sorted slice.
pub fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Human form of a byte count: `0`, `512`, `64K`, `4M`.
pub fn fmt_size(b: usize) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{}G", b >> 30)
    } else if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{}M", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{}K", b >> 10)
    } else {
        b.to_string()
    }
}

/// Rounds to `d` decimals (for tidy JSON, as the C programs' `%.Nf`).
pub fn round(x: f64, d: i32) -> f64 {
    let p = 10f64.powi(d);
    (x * p).round() / p
}

/// A page-aligned, pre-touched byte buffer (`posix_memalign` + `memset` in the C programs).
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    const ALIGN: usize = 4096;

    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(len.max(1), Self::ALIGN)
            .expect("buffer size overflows the address space")
    }

    /// `len` bytes (at least one is allocated), every one set to `fill`.
    pub fn new(len: usize, fill: u8) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(p) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` points to `layout.size()` writable bytes just allocated.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), fill, layout.size()) };
        AlignedBuf { ptr, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` owns `len` initialized bytes (written in `new`) for our lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this same layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) };
    }
}

/// Rounds to at least 4 significant digits and at least 1 decimal: small bandwidths keep
/// their value instead of printing as 0.0.
pub fn round_sig4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let d = (3 - x.abs().log10().floor() as i32).max(1);
    round(x, d)
}

/// Aggregate CPU counters of the machine (`cpu` line of `/proc/stat`), seconds.
#[derive(Debug, Clone, Copy)]
struct MachineCpu {
    busy: f64,
    steal: f64,
    total: f64,
}

fn machine_cpu() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // user nice system idle iowait irq softirq steal
    let busy = v[0] + v[1] + v[2] + v[5] + v[6];
    Some(MachineCpu {
        busy: busy / hz,
        steal: v[7] / hz,
        total: (busy + v[3] + v[4] + v[7]) / hz,
    })
}

/// CPU time (user + system) of this process and of its waited-for children, seconds.
fn own_cpu_s() -> f64 {
    let get = |who| {
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage and `who` a valid selector.
        unsafe { libc::getrusage(who, &mut ru) };
        let s = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
        s(ru.ru_utime) + s(ru.ru_stime)
    };
    get(libc::RUSAGE_SELF) + get(libc::RUSAGE_CHILDREN)
}

/// Measures how much other processes and the hypervisor took from the machine while a
/// job ran, as bench/peers/run.sh does: busy CPU time of the machine minus ours, and steal.
pub struct Disturbance {
    machine: Option<MachineCpu>,
    own: f64,
}

impl Disturbance {
    /// Starts measuring.
    pub fn start() -> Disturbance {
        Disturbance {
            machine: machine_cpu(),
            own: own_cpu_s(),
        }
    }

    /// `(foreign %, steal %)` of the machine's CPU capacity since [`Disturbance::start`], or
    /// `None` if `/proc/stat` is unreadable.
    pub fn finish(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.machine?, machine_cpu()?);
        let total = b.total - a.total;
        if total <= 0.0 {
            return None;
        }
        let foreign = ((b.busy - a.busy) - (own_cpu_s() - self.own)).max(0.0);
        Some((100.0 * foreign / total, 100.0 * (b.steal - a.steal) / total))
    }
}

/// Waits until other processes use less than `max_pct` % of the machine over one second,
/// or `limit` has passed (then warns on stderr).
pub fn wait_idle(limit: std::time::Duration, max_pct: f64) {
    let start = std::time::Instant::now();
    loop {
        let d = Disturbance::start();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Some((busy, steal)) = d.finish() else {
            return;
        };
        if busy < max_pct && steal < max_pct {
            return;
        }
        if start.elapsed() >= limit {
            eprintln!(
                "tocsin bench: warning: the machine is still {busy:.0}% busy after {}s; \
                 measuring anyway",
                limit.as_secs()
            );
            return;
        }
    }
}

/// `true` when this process's stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The terminal of the user who started a self-launched `tocsin bench` (`/dev/tty`), where
/// rank 0 draws its bars directly: the launcher forwards rank output line by line, which
/// would hold back a bar's partial lines and reorder them with stdout.
#[derive(Debug)]
struct Tty {
    f: std::fs::File,
}

impl Tty {
    /// Opens `/dev/tty` for writing, unless writes from our background process group would
    /// stop us (`TOSTOP`).
    fn open() -> Option<Tty> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/tty")
            .ok()?;
        // SAFETY: an all-zero termios is a valid value of this plain C struct.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `f` is an open descriptor for the whole call and `t` a writable termios.
        if unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) } != 0 || t.c_lflag & libc::TOSTOP != 0 {
            return None;
        }
        Some(Tty { f })
    }

    fn out(&self, s: &str) -> std::io::Result<()> {
        (&self.f).write_all(s.as_bytes())
    }

    fn esc(&self, n: usize, code: char) -> std::io::Result<()> {
        if n > 0 {
            self.out(&format!("\x1b[{n}{code}"))?;
        }
        Ok(())
    }
}

impl TermLike for Tty {
    fn width(&self) -> u16 {
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero winsize is a valid value of this plain C struct.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid.
        let r = unsafe { libc::ioctl(self.f.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_col > 0 {
            ws.ws_col
        } else {
            80
        }
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.esc(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.esc(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.esc(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.esc(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.out(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.out(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.out("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        (&self.f).flush()
    }
}

/// Rank 0's progress bar and table output.
///
/// The bar is drawn on stderr when it is a terminal; in a self-launched job (whose ranks'
/// stderr is a pipe to the launcher) on the user's terminal (`/dev/tty`) when the parent's
/// stderr is one ([`super::TTY_ENV`]); otherwise, with `--quiet` and on other ranks, it is
/// hidden. Table lines go to stdout at once, except when the bar is on `/dev/tty`: they are
/// then held until [`Progress::finish`] has cleared the bar, so that the launcher's
/// forwarding of stdout cannot interleave them with the bar. Nothing is redrawn by a
/// background thread: the bar only moves between measurements.
pub struct Progress {
    pb: ProgressBar,
    held: Option<Vec<String>>,
}

impl Progress {
    /// A bar of `len` steps named `what`.
    pub fn new(rank: u32, quiet: bool, len: u64, what: &str) -> Progress {
        let mut held = None;
        let target = if rank != 0 || quiet {
            ProgressDrawTarget::hidden()
        } else if stderr_is_terminal() {
            ProgressDrawTarget::stderr_with_hz(10)
        } else if std::env::var_os(super::TTY_ENV).is_some_and(|v| v == "1") {
            match Tty::open() {
                Some(t) => {
                    held = Some(Vec::new());
                    ProgressDrawTarget::term_like_with_hz(Box::new(t), 10)
                }
                None => ProgressDrawTarget::hidden(),
            }
        } else {
            ProgressDrawTarget::hidden()
        };
        let pb = ProgressBar::with_draw_target(Some(len), target);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(what.to_string());
        Progress { pb, held }
    }

    /// Prints a line of the table on stdout (now, or after the bar is cleared).
    pub fn line(&mut self, s: String) {
        match &mut self.held {
            Some(v) => v.push(s),
            None => self.pb.suspend(|| {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}").and_then(|()| o.flush());
            }),
        }
    }

    /// Sets the text after the bar.
    pub fn set_message(&self, m: String) {
        self.pb.set_message(m);
    }

    /// Advances the bar.
    pub fn inc(&self, n: u64) {
        self.pb.inc(n);
    }

    /// Clears the bar and prints the held lines.
    pub fn finish(self) {
        self.pb.finish_and_clear();
        if let Some(v) = self.held {
            let mut o = std::io::stdout().lock();
            for s in v {
                let _ = writeln!(o, "{s}");
            }
            let _ = o.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert!(parse_size("4X").is_err());
        assert_eq!(parse_message_size("1G").unwrap(), MAX_MESSAGE_BYTES);
        for bad in [
            "100G",
            "1025M",
            "99999999999999999999",
            "18446744073709551615G",
        ] {
            let e = parse_message_size(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("1G"), "{bad}: {e}");
        }
        assert!(check_memory("--max-size", u64::MAX).is_err() || mem_available().is_none());
        assert!(check_memory("--max-size", 0).is_ok());
        assert!(parse_size("").is_err());
        assert_eq!(fmt_size(4 << 20), "4M");
        assert_eq!(fmt_size(1536), "1536");
        assert_eq!(round_sig4(0.0318964), 0.03190);
        assert_eq!(round_sig4(6553.61), 6553.6);
        assert_eq!(round_sig4(12.34567), 12.35);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        assert_eq!(median_sorted(&[7.0]), 7.0);
    }
}
