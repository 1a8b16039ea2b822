//! The progress engine: owns the protocol [`Core`] and both halves of the transports
//! ([`Tx`], [`Rx`]) behind one lock, and implements each [`ProgressMode`]'s way of waiting.
//!
//! It must not parse headers or match messages (that is [`crate::protocol`]) nor name a
//! transport or know how one wakes or interrupts a peer (that is [`crate::transport`]: it
//! reaches them through [`Tx`], [`Rx`] and [`Bells`]). Everything that blocks lives here, and every wait
//! has a way out: peers are checked for death (pidfd) at least every
//! [`LIVENESS_PERIOD`] while a wait lasts.
//!
//! - `poll`: `wait` calls [`Engine::progress_once`] in a loop.
//! - `block`: `wait` spins [`Engine::spin_budget`] (see [`spin`]), then arms
//!   (`sleepers += 1`), re-polls, and sleeps on its doorbell futex; senders ring it only
//!   when armed, so the fast path has no system call.
//! - `thread`: `block`, plus a progress thread ([`thread`]).
//! - `signal` / `uintr`: `block`, plus: while no thread of the rank polls or sleeps, senders
//!   interrupt its registered thread, whose handler runs [`Engine::on_interrupt`].
//!
//! ## Progress from handlers
//! A handler never waits for the engine lock: if it is taken (possibly by the very code the
//! handler interrupted) it sets `pending` and returns; whoever holds the lock re-runs a pass
//! when it releases it ([`Engine::request_progress`]). In a handler the core runs in
//! no-allocation mode and nothing is logged; peer failures found there are recorded in
//! `bad_peers` and handled by the next ordinary pass.

pub(crate) mod coll;
mod lock;
mod spin;
pub(crate) mod thread;

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, ProgressMode};
use crate::error::{Error, Result};
use crate::interrupt::{self, signal, uintr};
use crate::pmi::Pmi;
use crate::protocol::{Core, CoreConfig, Fail, ReqShared, Status};
use crate::stats;
use crate::sys::{self, PidFd};
use crate::transport::shm::{default_ring_bytes, Interrupter, Segment, ShmNode};
use crate::transport::{node, Bells, PassOut, PollCx, Route, Rx, Tx};
use crate::{Rank, Tag};

use lock::SpinLock;

/// How often a waiting rank checks that its peers are alive.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(100);
/// Most peers a liveness check probes directly because live requests wait on them (the
/// others are watched by their node's ring of watchers).
const DIRECT_PROBES: usize = 16;
/// Longest single sleep on the doorbell (then liveness is re-checked).
const MAX_SLEEP: Duration = Duration::from_millis(50);

static INITIALIZED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is thread mode's progress thread.
    static PROGRESS_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The completion handle of a request.
pub(crate) type ReqHandle = Arc<ReqShared>;

/// How this rank watches a peer's process.
#[derive(Debug)]
enum Liveness {
    /// A pidfd: exact, immune to pid reuse.
    PidFd(PidFd),
    /// `kill(pid, 0)` and `/proc/<pid>/stat`: the fallback when no pidfd could be opened.
    Probe(i32),
}

impl Liveness {
    /// Watches `pid`: a pidfd if one can be opened (else the probe, with a warning once
    /// unless the process is already gone).
    fn open(pid: i32) -> Liveness {
        match PidFd::open(pid) {
            Ok(f) => Liveness::PidFd(f),
            Err(e) => {
                if e.raw_os_error() != Some(libc::ESRCH) {
                    crate::diag::warn_once(
                        crate::diag::Warn::Liveness,
                        format_args!(
                            "cannot open a pidfd for pid {pid} ({e}): its death is detected with \
                             kill(pid, 0), which a recycled pid can fool"
                        ),
                    );
                }
                Liveness::Probe(pid)
            }
        }
    }

    fn exited(&self) -> bool {
        match self {
            Liveness::PidFd(f) => f.exited(),
            Liveness::Probe(pid) => sys::pid_gone(*pid),
        }
    }
}

/// This rank's share of its node's liveness checks (see the shared-memory transport's
/// "Liveness in O(1) per rank"): the one node peer it watches, and what it has seen of the
/// gone bitmap.
#[derive(Debug, Default)]
struct Watch {
    /// The node peer watched and how, `None` once no other rank is left to watch.
    target: Option<(Rank, Liveness)>,
    /// The gone epoch last read.
    epoch: u32,
    /// The gone bitmap as last read.
    seen: Vec<u64>,
}

/// What a waiting thread's pass found, to decide whether it may sleep.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// Another thread holds the engine lock: retry soon (it may complete our request).
    Busy,
    /// The pass ran.
    Ran {
        /// Records remain in our rings: do not sleep.
        unread: bool,
    },
}

struct Inner {
    core: Core,
    tx: Tx,
    rx: Rx,
    /// Collectives in flight, advanced after every pass.
    colls: coll::Colls,
}

/// One rank's progress engine.
pub(crate) struct Engine {
    cfg: Config,
    /// More ranks than cores on this node: waits yield (poll) or sleep at once.
    oversubscribed: bool,
    /// How long a wait spins before it sleeps (`block` and up): see [`Engine::spin_budget`].
    spin: Duration,
    /// `thread` mode: the application's threads now in a wait ([`Engine::wait_until`]).
    /// While there are any, the progress thread parks ([`Engine::park`]).
    app_waiting: AtomicU32,
    /// `thread` mode: the progress thread is parked (or about to).
    pt_parked: AtomicBool,
    /// `thread` mode: `pt_watch` was raised (by `pt_level`) on behalf of the parked progress
    /// thread by the application thread that left its wait last (whoever clears this lowers
    /// it again).
    pt_armed: AtomicBool,
    /// `thread` mode: what the progress thread arms `pt_watch` with:
    /// [`interrupt::WATCH_ANY`], or [`interrupt::WATCH_URGENT`] on an oversubscribed node.
    pt_level: u32,
    me: Rank,
    size: u32,
    inner: SpinLock<Inner>,
    /// A pass was requested while the lock was held (by a handler or another thread).
    pending: AtomicBool,
    /// Peers found to send malformed data (possibly inside a handler), failed by the next
    /// ordinary pass.
    bad_peers: Vec<AtomicBool>,
    /// Some flag of `bad_peers` may be set (the ordinary pass scans them only then).
    any_bad: AtomicBool,
    /// A handler left a record it could not store without allocating; interrupts are
    /// suppressed (`irq_pending` kept at 1) until the next ordinary pass.
    stalled: AtomicBool,
    pids: Vec<i32>,
    /// This rank's node peer to watch, and the gone bitmap as seen ([`Engine::check_peers`]).
    watch: Mutex<Watch>,
    /// Peers already handled as gone by [`Engine::check_peers`].
    gone: Vec<AtomicBool>,
    /// Peers handled as gone that died (exited without finishing), and how many: a wait
    /// that watches a communicator's members reads the count, not every flag, per pass.
    died: Vec<AtomicBool>,
    deaths: std::sync::atomic::AtomicU32,
    /// Time base of `last_check`.
    epoch: Instant,
    /// When peers were last checked, ns since `epoch` (shared by every waiting thread).
    last_check: AtomicU64,
    /// Shared with the TCP transport, which looks peers' addresses up on first contact.
    pmi: Arc<Mutex<Option<Pmi>>>,
    _signal: Option<signal::Installed>,
    uintr_rx: Option<(std::os::fd::OwnedFd, i32)>,
    thread: thread::ProgressThread,
    /// A job of more than one rank (else nothing is ever received from a peer).
    multi: bool,
    /// [`Engine::shutdown`] ran.
    shut: AtomicBool,
    // Declared last: dropped after `inner`, whose rings point into its segment.
    bells: Bells,
}

impl interrupt::Target for Engine {
    /// The handler body (signal or user interrupt): acknowledge, then progress in
    /// no-allocation mode, or leave it to the lock holder. Async-signal-safe.
    fn on_interrupt(&self) {
        if self.stalled.load(Ordering::SeqCst) {
            // Handlers cannot help until an ordinary pass has made room; an interrupt that
            // still arrives (sent before we suppressed them) is ignored.
            stats::bump(stats::Counter::InterruptsSuppressed);
            return;
        }
        stats::bump(stats::Counter::HandlerRuns);
        interrupt::acknowledge(&self.bells.me().irq_pending);
        self.request_progress(true);
    }
}

impl Engine {
    pub(crate) fn init(cfg: Config) -> Result<Arc<Engine>> {
        if INITIALIZED.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyInitialized);
        }
        stats::reset();
        let cell = match Pmi::from_env() {
            Ok(p) => Arc::new(Mutex::new(p)),
            Err(e) => {
                INITIALIZED.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        let r = Self::init_inner(cfg, &cell);
        if let Err(e) = &r {
            INITIALIZED.store(false, Ordering::SeqCst);
            abort_job(&cell, e);
        }
        r
    }

    fn init_inner(cfg: Config, cell: &Arc<Mutex<Option<Pmi>>>) -> Result<Arc<Engine>> {
        let mut guard = cell
            .lock()
            .map_err(|_| Error::Pmi("PMI lock poisoned".into()))?;
        let pmi: &mut Option<Pmi> = &mut guard;
        let (me, size) = pmi.as_ref().map_or((0, 1), |p| (p.rank(), p.size()));
        crate::diag::set_rank(me);
        let mut cfg = cfg;
        if cfg.eager_auto {
            cfg.eager_threshold =
                crate::transport::shm::default_eager_threshold(size, cfg.ring_bytes);
        }
        let cap = cfg
            .ring_bytes
            .unwrap_or_else(|| default_ring_bytes(size, cfg.eager_threshold));
        if cfg.eager_threshold + crate::wire::EAGER_HDR_LEN > crate::ring::max_body(cap) {
            return Err(Error::Config {
                name: "TOCSIN_EAGER_THRESHOLD",
                value: cfg.eager_threshold.to_string(),
                reason: format!(
                    "an eager message must fit a quarter of a ring ({cap} bytes): raise TOCSIN_RING_BYTES or lower the threshold"
                ),
            });
        }
        // Measured protocol values (`crate::tune`): rank 0 takes them from the cache or a
        // calibration and publishes them before the bootstrap's first barrier; the others
        // read them after the bootstrap, so every rank uses rank 0's (no extra round trip).
        // The ring size above does not depend on them: the threshold only goes down.
        let tuned_here = (me == 0).then(|| {
            let over = cfg.oversubscribed.unwrap_or_else(detect_oversubscription);
            crate::tune::for_job(&cfg, size, over)
        });
        if let (Some(t), Some(p), true) = (&tuned_here, pmi.as_mut(), size > 1) {
            p.put(crate::tune::PMI_KEY, &t.encode())?;
        }
        if cfg.progress == ProgressMode::Uintr {
            uintr::support().require()?;
        }
        let mode = ProgressMode::ALL
            .iter()
            .position(|m| *m == cfg.progress)
            .expect("listed") as u32;
        // Which peers share this node, and so which transport serves each.
        let nodes = match pmi.as_mut() {
            Some(p) if size > 1 => node::discover(p, cfg.nolocal)?,
            _ => node::Nodes::single(size),
        };
        let route: Vec<Route> = (0..size).map(|r| nodes.route(me, r)).collect();
        // Install the signal handler before any peer can learn our thread id. In `uintr`
        // mode too when some peers are on other nodes: SENDUIPI reaches only this node, TCP
        // peers interrupt through the kernel's socket signal.
        let sig = if cfg.progress == ProgressMode::Signal
            || (cfg.progress == ProgressMode::Uintr && nodes.count() > 1)
        {
            if sys::rlimit_sigpending() == Some(0) {
                crate::diag::warn_once(
                    crate::diag::Warn::SignalQueue,
                    "signal progress: RLIMIT_SIGPENDING is 0, so no real-time signal can be \
                     queued: ranks progress only when they call tocsin (as in block mode); raise `ulimit -i`",
                );
            }
            Some(signal::install(cfg.signal)?)
        } else {
            None
        };
        // Several nodes: every rank has TCP peers (each node has at least one rank).
        let listener = match pmi.as_mut() {
            Some(p) if nodes.count() > 1 => {
                let ip = crate::transport::tcp::local_address(cfg.tcp_if.as_deref())?;
                Some(crate::transport::tcp::Endpoint::listen(p, ip)?)
            }
            _ => None,
        };
        let local = nodes.local_ranks(me);
        let mut bells = match pmi.as_mut() {
            Some(p) if size > 1 => {
                let seg = Segment::bootstrap(
                    p,
                    &local,
                    cap,
                    cfg.fast_paths,
                    mode,
                    cfg.posix_shm,
                    sig.as_ref().map_or(0, |s| s.signo()),
                )?;
                Bells::new(me, route, ShmNode::new(seg, me, &local, size))
            }
            _ => Bells::alone(),
        };
        let tuned = match (tuned_here, pmi.as_mut()) {
            (Some(t), _) => t,
            (None, Some(p)) => {
                let v = p.get(crate::tune::PMI_KEY)?;
                crate::tune::Tuned::decode(&v).ok_or_else(|| {
                    Error::Pmi(format!(
                        "malformed tuned values {v:?} from rank 0 (mixed tocsin versions?)"
                    ))
                })?
            }
            (None, None) => crate::tune::Tuned {
                values: crate::tune::Tunables::builtin(),
                origin: crate::tune::Origin::Default,
            },
        };
        crate::tune::apply(&mut cfg, &tuned.values);
        tracing::debug!(
            eager_threshold = cfg.eager_threshold,
            cma = cfg.cma,
            chunk_bytes = cfg.chunk_bytes,
            spin_us = cfg.spin_us,
            origin = tuned.origin.name(),
            "protocol values"
        );
        drop(guard);
        let pmi = cell.clone();
        if let Some(l) = listener {
            let mut ep = crate::transport::tcp::Endpoint::new(l, pmi.clone(), me, size)?;
            if let Some(s) = &sig {
                // The kernel raises our signal on the registered thread when data arrives.
                ep.raise_signal(signal::gettid(), s.signo());
                signal::install_sigio_fallback();
            }
            bells.add_tcp(ep)?;
        }
        // Before any peer can use CMA or pidfd_getfd on us: widen ptrace only as Yama needs.
        if let (Some(n), true) = (bells.node(), cfg.cma || cfg.progress == ProgressMode::Uintr) {
            let peers: Vec<i32> = n.peers().map(|r| n.pid(r)).collect();
            if let sys::PtraceOutcome::Refused(why) = sys::ptrace_policy_for_cma(&peers) {
                if cfg.cma {
                    crate::diag::warn_once(
                        crate::diag::Warn::CmaRefused,
                        format!("CMA refused: {why}; large messages use the pipelined copy"),
                    );
                    cfg.cma = false;
                }
            }
        }
        let mut uintr_rx = None;
        if let (Some(n), Some(_)) = (bells.node_mut(), &sig) {
            // Each node peer's thread id and signal, published in its control block before
            // the bootstrap's last barrier.
            let mut tids = vec![0; size as usize];
            let mut signos = vec![0; size as usize];
            for r in n.peers().collect::<Vec<_>>() {
                let c = n.control(r);
                tids[r as usize] = c.tid.load(Ordering::Acquire);
                signos[r as usize] = c.signo.load(Ordering::Acquire);
                if tids[r as usize] <= 0 || signos[r as usize] <= 0 {
                    return Err(Error::Unsupported(format!(
                        "signal progress: rank {r} published no thread id or signal (is it in signal mode?)"
                    )));
                }
            }
            n.set_interrupter(Interrupter::Signal { signos, tids });
        }
        if cfg.progress == ProgressMode::Uintr && size > 1 {
            let mut g = pmi
                .lock()
                .map_err(|_| Error::Pmi("PMI lock poisoned".into()))?;
            let p = g.as_mut().expect("multi-rank job has PMI");
            let (senders, rx) = uintr_setup(p, me, size, &local)?;
            drop(g);
            if let Some(n) = bells.node_mut() {
                n.set_interrupter(Interrupter::Uintr(senders));
            }
            uintr_rx = Some(rx);
        }
        let pids: Vec<i32> = (0..size).map(|r| bells.pid(r)).collect();
        // Watch the next rank of the node (see `Watch`).
        let watch = Watch {
            target: bells
                .node()
                .and_then(|n| n.next_local(me))
                .map(|r| (r, Liveness::open(pids[r as usize]))),
            epoch: 0,
            seen: Vec::new(),
        };
        let (tx, rx) = bells.transports();
        let core = Core::new(CoreConfig {
            me,
            size,
            eager_threshold: cfg.eager_threshold,
            chunk: cfg.chunk_bytes,
            cma: cfg.cma,
            queue_capacity: 1024,
        });
        let mut core = core;
        for r in 0..size {
            if r != me && !tx.limits(r).single_copy {
                core.set_single_copy(r, false);
            }
        }
        tracing::debug!(
            rank = me,
            size,
            ring_bytes = cap,
            segment_bytes = bells.node().map_or(0, |n| n.segment().len()),
            fast_rings = bells.node().map_or(0, |n| n.segment().fast_paths()),
            mode = cfg.progress.name(),
            "tocsin initialized"
        );
        let core_pin = cfg.progress_core;
        let oversubscribed = cfg.oversubscribed.unwrap_or_else(detect_oversubscription);
        if oversubscribed {
            tracing::debug!("oversubscribed node: waits yield their core");
        }
        let spin = spin::budget(cfg.spin_us, oversubscribed, || {
            // Only the sleeping modes of a job with peers ever sleep.
            if !(cfg.progress.sleeps() && size > 1) {
                return None;
            }
            let w = spin::measure_wake_cost();
            tracing::debug!(rank = me, wake_cost = ?w, "wake-up cost measured");
            w
        });
        let eng = Arc::new(Engine {
            cfg,
            oversubscribed,
            spin,
            app_waiting: AtomicU32::new(0),
            pt_parked: AtomicBool::new(false),
            pt_armed: AtomicBool::new(false),
            pt_level: if oversubscribed {
                interrupt::WATCH_URGENT
            } else {
                interrupt::WATCH_ANY
            },
            me,
            size,
            inner: SpinLock::new(Inner {
                core,
                tx,
                rx,
                colls: coll::Colls::default(),
            }),
            pending: AtomicBool::new(false),
            bad_peers: (0..size).map(|_| AtomicBool::new(false)).collect(),
            any_bad: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            pids,
            watch: Mutex::new(watch),
            gone: (0..size).map(|_| AtomicBool::new(false)).collect(),
            died: (0..size).map(|_| AtomicBool::new(false)).collect(),
            deaths: std::sync::atomic::AtomicU32::new(0),
            epoch: Instant::now(),
            last_check: AtomicU64::new(0),
            pmi,
            _signal: sig,
            uintr_rx,
            thread: thread::ProgressThread::default(),
            multi: size > 1,
            shut: AtomicBool::new(false),
            bells,
        });
        if eng.cfg.progress.interrupts() {
            // SAFETY: unregistered in `shutdown` before the engine can be freed.
            unsafe {
                interrupt::register_target(
                    &*eng as &dyn interrupt::Target as *const dyn interrupt::Target,
                )
            };
            if eng.cfg.progress == ProgressMode::Uintr {
                uintr::stui();
            }
            // An interrupt that arrived before registration found no target: catch up.
            interrupt::acknowledge(&eng.bells.me().irq_pending);
            eng.request_progress(false);
        }
        if eng.cfg.progress == ProgressMode::Thread {
            if eng.oversubscribed && eng.pt_may_park() {
                eng.thread.defer(&eng, core_pin);
            } else {
                eng.thread.start(eng.clone(), core_pin)?;
            }
        }
        Ok(eng)
    }

    /// Finishes this rank cleanly when the last communicator handle goes away: pushes every
    /// record still queued for ring space (a FIN behind a full ring, say; waiting, with
    /// liveness checks, for consumers to make room), stops the progress thread and the
    /// handler target, then publishes `finished` so that peers fail only the operations that
    /// needed this rank ([`Core::peer_gone`]) and rings every peer so they notice promptly.
    pub(crate) fn shutdown(&self) {
        if self.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.multi {
            self.wait_until(|| !self.inner.lock().core.has_backlog(), None);
        }
        self.thread.stop(|| {
            self.bells.wake_me();
            self.bells.wake_me_pt();
        });
        if self.cfg.progress.interrupts() {
            interrupt::unregister_target();
        }
        if self.multi {
            // A last pass: nothing the thread or a handler queued is left behind.
            let mut g = self.inner.lock();
            self.pass(&mut g);
            let Inner { tx, rx, .. } = &mut *g;
            rx.bye(tx);
            drop(g);
            self.bells.me().finished.store(1, Ordering::Release);
            if let Some(n) = self.bells.node() {
                n.mark_gone(self.me);
            }
            // Ring the peers that sleep (the others see the gone epoch move at their next
            // check); the fence pairs with their SeqCst `sleepers` update before sleeping.
            std::sync::atomic::fence(Ordering::SeqCst);
            for p in 0..self.size {
                if p != self.me && self.bells.sleeping(p) {
                    self.bells.wake(p);
                }
            }
        }
        if std::env::var_os("TOCSIN_STATS").is_some_and(|v| v == "1") {
            eprintln!("tocsin stats (rank {}): {}", self.me, stats::stats());
        }
    }

    pub(crate) fn rank(&self) -> Rank {
        self.me
    }
    pub(crate) fn size(&self) -> u32 {
        self.size
    }
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }
    /// The name of the transport serving `peer`: `self`, `shm` or `tcp`.
    pub(crate) fn transport_name(&self, peer: Rank) -> &'static str {
        self.bells.route(peer).name()
    }

    /// Notifies the peers this pass pushed records to: doorbell if one of their threads
    /// sleeps, interrupt if they compute (signal/uintr modes). In poll mode nobody sleeps,
    /// so not even the fence is paid. Async-signal-safe.
    fn ring_bells(&self, inner: &mut Inner) {
        let mode = self.cfg.progress;
        if mode.sleeps() {
            inner.core.take_touched(|p, urgent| {
                self.bells
                    .notify(p, true, mode.interrupts() && urgent, urgent)
            })
        } else {
            inner.core.take_touched(|_, _| {})
        }
    }

    /// One progress pass over `inner`: drain every incoming ring (up to [`BATCH`] records
    /// each), retry queued sends, ring doorbells.
    fn pass(&self, inner: &mut Inner) -> PassOut {
        self.pass_ctx(inner, false)
    }

    /// A pass; `handler` says it runs in a signal/interrupt handler (no allocation, no
    /// logging, failures deferred to `bad_peers`). Async-signal-safe when `handler` is true.
    fn pass_ctx(&self, inner: &mut Inner, handler: bool) -> PassOut {
        let Inner {
            core,
            tx,
            rx,
            colls,
        } = inner;
        let completed_before = core.completions;
        core.no_alloc = handler;
        // Nothing in a handler's pass may connect (a PMI request) or allocate.
        tx.ordinary = !handler;
        if !handler
            && self.stalled.load(Ordering::Relaxed)
            && self.stalled.swap(false, Ordering::SeqCst)
        {
            // Ordinary context again: accept interrupts again (records published after
            // this are either drained below or interrupt us).
            interrupt::acknowledge(&self.bells.me().irq_pending);
        }
        let cx = PollCx {
            handler,
            sleeps: self.cfg.progress.sleeps(),
            interrupts: self.cfg.progress.interrupts(),
            stalled: &self.stalled,
            bad_peers: &self.bad_peers,
            any_bad: &self.any_bad,
            pending: &self.pending,
        };
        let mut out = rx.poll(core, tx, &self.bells, &cx);
        if !colls.is_empty() {
            out.did |= colls.advance(core, tx, handler);
        }
        // Cleared before the scan: a flag set meanwhile sets it again for the next pass.
        if !handler
            && self.any_bad.load(Ordering::Relaxed)
            && self.any_bad.swap(false, Ordering::Acquire)
        {
            for (p, b) in self.bad_peers.iter().enumerate() {
                if b.load(Ordering::Relaxed) && b.swap(false, Ordering::Relaxed) {
                    self.fail_malformed(core, p as Rank);
                }
            }
        }
        core.no_alloc = false;
        if core.has_backlog() {
            core.flush_all(tx);
        }
        // Interrupt modes: records still waiting for ring space must not wait for this
        // rank's next call (it may be computing): ask each consumer concerned to tell us
        // when it frees space (an interrupt if we compute then), then retry once after the
        // fence, so that space freed meanwhile is not missed (Dekker with
        // `SegView::space_freed`, `ShmInbox::take_wanters`).
        if self.cfg.progress.interrupts() {
            self.bells.ask_for_space(core, tx);
        }
        if !handler {
            if self.bells.take_sigqueue_full() {
                crate::diag::warn_once(
                    crate::diag::Warn::SignalQueue,
                    "a real-time signal could not be queued (EAGAIN: the user's RLIMIT_SIGPENDING \
                     queue is full): that peer progresses at its next tocsin call instead of at once; \
                     raise `ulimit -i`",
                );
            }
            if let Some((peer, errno)) = core.cma_failure.take() {
                crate::diag::warn_once(
                    crate::diag::Warn::CmaRefused,
                    format_args!(
                        "single-copy transfers (CMA: process_vm_readv/writev) with rank {peer} refused: {}; \
                         using the pipelined copy through shared memory (set TOCSIN_CMA=0 to skip the attempt)",
                        std::io::Error::from_raw_os_error(errno)
                    ),
                );
            }
        }
        self.ring_bells(inner);
        inner.tx.ordinary = true;
        // Requests completed while other threads of this rank sleep (thread mode's progress
        // thread completing the application's receive, or a send whose last chunk left in
        // a pass that received nothing): wake them, or a completed request would wait for
        // the end of their sleep.
        // (A progress thread that parks sleeps on a doorbell of its own, `pt_bell`, and is
        // not counted in `sleepers`: it needs no completion, only the records it watches.)
        if (out.did || inner.core.completions != completed_before)
            && self.bells.me().sleepers.load(Ordering::Relaxed) > 0
        {
            self.bells.wake_me();
        }
        out
    }

    /// Fails `peer` for a malformed record or corrupt ring (ordinary context only). If it
    /// may still write into one of our receive buffers (CMA), it is killed first and its
    /// exit awaited, so that no buffer is handed back while it could still be written; if
    /// that cannot be ensured, the process ends ([`crate::diag::fatal`]).
    fn fail_malformed(&self, core: &mut Core, peer: Rank) {
        let pid = self.pids[peer as usize];
        // Only a node peer (a pid of ours to kill) can write into our buffers (CMA).
        let watch = (pid > 0 && self.bells.route(peer) == Route::Shm).then(|| Liveness::open(pid));
        let kill = watch.as_ref().is_some_and(|w| !w.exited()) && core.exposed_to(peer);
        // One warning (one kind, printed once): say whether the peer is being killed.
        crate::diag::warn_once(
            crate::diag::Warn::Malformed,
            format_args!(
                "malformed record or corrupt ring from rank {peer} (pid {pid}): treating it as failed{}",
                if kill {
                    "; it may still write into this rank's receive buffers: killing it"
                } else {
                    ""
                }
            ),
        );
        if kill {
            // SAFETY: plain kill(2) of the peer's pid (a pidfd guards against reuse when we
            // have one: it is checked for exit below).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let t = Instant::now();
            while watch.as_ref().is_some_and(|w| !w.exited()) {
                if t.elapsed() > Duration::from_secs(2) {
                    crate::diag::fatal(
                        "a peer that may still write into this rank's buffers sent malformed \
                         data and could not be stopped",
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        core.fail_peer(peer);
    }

    /// Makes progress if no other thread is doing it right now.
    pub(crate) fn progress_once(&self) -> Result<()> {
        if let Some(mut g) = self.inner.try_lock() {
            g.core.receiver_waiting = false;
            self.pass(&mut g);
            self.unlock(g);
        }
        Ok(())
    }

    /// A pass as a waiting thread (a matched rendezvous is read here). With `ask_space`,
    /// asks the consumers of rings our records wait for to ring us when they free space
    /// (before sleeping), then retries once (Dekker with the consumer's `space_freed`/`take_wanters`).
    fn progress_waiting(&self, ask_space: bool) -> Found {
        let Some(mut g) = self.inner.try_lock() else {
            return Found::Busy;
        };
        g.core.receiver_waiting = true;
        let out = self.pass(&mut g);
        // The interrupt modes' passes already asked (see `pass_ctx`).
        if ask_space && !self.cfg.progress.interrupts() {
            let Inner { core, tx, .. } = &mut *g;
            self.bells.ask_for_space(core, tx);
            self.ring_bells(&mut g);
        }
        self.unlock(g);
        Found::Ran { unread: out.unread }
    }

    /// Releases the lock, then runs the passes that were requested meanwhile.
    fn unlock(&self, g: lock::Guard<'_, Inner>) {
        drop(g);
        if self.pending.load(Ordering::SeqCst) {
            self.request_progress(false);
        }
    }

    /// Runs a pass now if the lock is free, else leaves it to the holder (`pending`), who
    /// re-checks `pending` after releasing (both sides `SeqCst`: no request is lost).
    /// Async-signal-safe when `handler` is true.
    pub(crate) fn request_progress(&self, handler: bool) {
        loop {
            match self.inner.try_lock() {
                Some(mut g) => {
                    self.pending.store(false, Ordering::SeqCst);
                    // In a handler, the rank is "waiting" only if some thread polls.
                    g.core.receiver_waiting =
                        !handler || self.bells.me().polling.load(Ordering::Relaxed) > 0;
                    self.pass_ctx(&mut g, handler);
                    drop(g);
                    if !self.pending.load(Ordering::SeqCst) {
                        return;
                    }
                }
                None => {
                    self.pending.store(true, Ordering::SeqCst);
                    if self.inner.is_locked() {
                        return;
                    }
                }
            }
        }
    }

    /// Posts a send. `blocking`: the caller waits for the request at once (a blocking
    /// send), so its RTS may offer the receiver a CMA split (both copy).
    pub(crate) fn post_send(
        &self,
        p: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
        blocking: bool,
    ) -> Result<ReqHandle> {
        if len > self.cfg.eager_threshold {
            self.background_progress();
        }
        Ok(self.locked(|core, tx| {
            core.sender_waiting = blocking;
            let h = core.post_send(tx, p, len, dest, tag, ctx);
            core.sender_waiting = false;
            h
        }))
    }

    /// `thread` mode on an oversubscribed node: the rank posted something that may need
    /// progress while it computes (a send or receive that may take the rendezvous, a
    /// synchronous send, a nonblocking collective): starts the progress thread if its start
    /// was deferred (see [`thread::ProgressThread::defer`]). Otherwise nothing (one atomic
    /// load). Not with the engine lock held. If the thread cannot be started, the rank goes
    /// on without it (its waits make the progress, as in `block` mode), saying so once.
    pub(crate) fn background_progress(&self) {
        if let Err(e) = self.thread.start_deferred() {
            crate::diag::warn_once(
                crate::diag::Warn::Other,
                format_args!("thread mode: the progress thread could not be started: {e}"),
            );
        }
    }

    /// Shuts down (as when the last communicator goes) and leaves the launcher's job
    /// (PMI finalize): nothing may be sent or received afterwards.
    pub(crate) fn finalize(&self) {
        self.shutdown();
        if let Some(p) = self.pmi.lock().ok().and_then(|mut p| p.take()) {
            if let Err(e) = p.finalize() {
                crate::diag::warn_once(
                    crate::diag::Warn::Other,
                    format_args!("PMI finalize failed: {e}"),
                );
            }
        }
    }

    /// Ends the job: asks the launcher to kill every rank (PMI `abort` with `code` and
    /// `msg`), then exits with `code` (at once when alone, or if the launcher has not
    /// killed this process within 5 s).
    pub(crate) fn abort(&self, code: i32, msg: &str) -> ! {
        if let Ok(mut g) = self.pmi.lock() {
            if let Some(p) = g.as_mut() {
                if p.size() > 1 && p.abort(code, msg).is_ok() {
                    drop(g);
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        }
        std::process::exit(code)
    }

    /// Starts a collective schedule; returns its request.
    pub(crate) fn start_coll(&self, r: coll::Running) -> ReqHandle {
        let h = r.done.clone();
        let mut g = self.inner.lock();
        let Inner {
            core, tx, colls, ..
        } = &mut *g;
        colls.start(core, tx, r);
        self.ring_bells(&mut g);
        self.unlock(g);
        h
    }

    /// The smallest world rank on this rank's node (the node's "color" for
    /// `split_type(shared)`): ranks served by the `self` or `shm` transport share it.
    pub(crate) fn node_leader(&self) -> Rank {
        (0..self.size)
            .find(|&r| matches!(self.bells.route(r), Route::SelfRank | Route::Shm))
            .unwrap_or(self.me)
    }

    /// Posts a synchronous send ([`Core::post_ssend`]).
    pub(crate) fn post_ssend(
        &self,
        p: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
    ) -> Result<ReqHandle> {
        self.background_progress();
        Ok(self.locked(|core, tx| core.post_ssend(tx, p, len, dest, tag, ctx)))
    }

    /// Matched probe: takes a matching message out of the unexpected queue
    /// ([`Core::improbe`]) after a progress pass.
    ///
    /// # Errors
    /// As [`Engine::iprobe`].
    pub(crate) fn improbe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<Option<(Status, u64)>> {
        self.probe_pass(src, |core| core.improbe(src, tag, ctx))
    }

    /// Blocks until [`Engine::improbe`] finds a message.
    ///
    /// # Errors
    /// As [`Engine::iprobe`].
    pub(crate) fn mprobe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<(Status, u64)> {
        self.probe_wait(|| self.improbe(src, tag, ctx))
    }

    /// Receives a message taken by a matched probe ([`Core::post_mrecv`]).
    pub(crate) fn post_mrecv(&self, msg: u64, p: *mut u8, len: usize) -> ReqHandle {
        if len > self.cfg.eager_threshold {
            self.background_progress();
        }
        self.locked(|core, tx| {
            core.receiver_waiting = true;
            core.post_mrecv(tx, msg, p, len)
        })
    }

    /// A blocking send's fast path ([`Core::try_send_eager_now`]): `true` if the message is
    /// already in the peer's ring.
    pub(crate) fn try_send_eager_now(&self, buf: &[u8], dest: Rank, tag: Tag, ctx: u16) -> bool {
        self.locked(|core, tx| core.try_send_eager_now(tx, buf, dest, tag, ctx))
    }

    /// Runs `f` on the core under the lock (waiting for it: application context only), then
    /// notifies the peers it pushed records to and releases the lock.
    fn locked<R>(&self, f: impl FnOnce(&mut Core, &mut Tx) -> R) -> R {
        let mut g = self.inner.lock();
        let Inner { core, tx, .. } = &mut *g;
        let r = f(core, tx);
        self.ring_bells(&mut g);
        self.unlock(g);
        r
    }

    /// Posts a receive; `blocking` tells the core its owner is about to wait (so a matched
    /// rendezvous is read here at once rather than answered with a CTS).
    pub(crate) fn post_recv(
        &self,
        p: *mut u8,
        len: usize,
        src: Rank,
        tag: Tag,
        ctx: u16,
        blocking: bool,
    ) -> Result<ReqHandle> {
        if !blocking && len > self.cfg.eager_threshold {
            self.background_progress();
        }
        Ok(self.locked(|core, tx| {
            core.receiver_waiting = blocking;
            core.post_recv(tx, p, len, src, tag, ctx)
        }))
    }

    /// The first of `members` (world ranks) found dead (exited without finishing), if any.
    pub(crate) fn died_member(&self, members: &[Rank]) -> Option<Rank> {
        if self.deaths.load(Ordering::Acquire) == 0 {
            return None;
        }
        members.iter().copied().find(|&r| {
            self.died
                .get(r as usize)
                .is_some_and(|d| d.load(Ordering::Acquire))
        })
    }

    /// Waits for `h` (a step of a collective run in the calling thread) or for a member of
    /// its communicator to die, whichever comes first: a collective whose member died can
    /// no longer complete even when this rank's own partners are alive (they give up).
    /// On a death the request is cancelled if it can be (else waited for).
    ///
    /// # Errors
    /// [`Error::PeerDied`] naming the dead member; the request's own error.
    pub(crate) fn wait_coll_step(&self, h: &ReqHandle, members: &[Rank]) -> Result<Status> {
        let mut dead = None;
        self.wait_until(
            || {
                if h.is_complete() {
                    return true;
                }
                dead = self.died_member(members);
                dead.is_some()
            },
            None,
        );
        if let Some(r) = dead.filter(|_| !h.is_complete()) {
            if !self.cancel(h) {
                let _ = self.wait(h);
            }
            return Err(self.peer_died(r));
        }
        self.outcome(h)
    }

    /// `true` if world rank `r` finished cleanly (known to the protocol core).
    pub(crate) fn is_finished(&self, r: Rank) -> bool {
        self.inner.lock().core.is_finished(r)
    }

    /// A blocking receive's post: as [`Engine::post_recv`] with `blocking`, on a request
    /// cell reused from this thread's last blocking receive when there is one (no
    /// allocation per receive; see [`recycle_cell`]).
    pub(crate) fn post_recv_blocking(
        &self,
        p: *mut u8,
        len: usize,
        src: Rank,
        tag: Tag,
        ctx: u16,
    ) -> ReqHandle {
        let cell = SPARE_CELL
            .try_with(|c| c.take())
            .ok()
            .flatten()
            .unwrap_or_else(|| ReqShared::new(true));
        self.locked(|core, tx| {
            core.receiver_waiting = true;
            core.post_recv_with(tx, cell, p, len, src, tag, ctx)
        })
    }

    /// The outcome of a completed request as the API reports it; the same every time it is
    /// asked.
    pub(crate) fn outcome(&self, h: &ReqShared) -> Result<Status> {
        let Some((st, fail)) = h.outcome() else {
            return Err(Error::Unsupported(
                "internal: outcome of a request that has not completed".into(),
            ));
        };
        match fail {
            None => Ok(st),
            Some(Fail::Truncated {
                message_len,
                buffer_len,
            }) => Err(Error::Truncated {
                message_len,
                buffer_len,
                from: st.source,
                tag: st.tag,
            }),
            Some(Fail::PeerDied { rank }) => Err(self.peer_died(rank)),
            Some(Fail::Cancelled) => Err(Error::Cancelled {
                peer: st.source,
                tag: st.tag,
            }),
            Some(Fail::Malformed { rank, detail }) => Err(Error::Malformed {
                what: "record",
                from: rank,
                detail: detail.into(),
            }),
        }
    }

    fn peer_died(&self, rank: Rank) -> Error {
        Error::PeerDied {
            rank,
            pid: match self.pids.get(rank as usize) {
                Some(&p) if p != 0 => p,
                _ => self.bells.pid(rank),
            },
            me: self.me,
        }
    }

    /// Checks peers at most once per [`LIVENESS_PERIOD`] across all threads of the rank.
    fn maybe_check_peers(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.last_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LIVENESS_PERIOD.as_nanos() as u64
            && self
                .last_check
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.check_peers();
        }
    }

    /// Finds peers that are gone: finished cleanly (their `finished` word) or exited
    /// (pidfd, or the `kill(pid, 0)` fallback). For each, handles every record it published
    /// (complete eager messages stay receivable, however deep its ring), then marks it gone,
    /// which fails exactly the requests that can no longer complete ([`Core::peer_gone`]).
    fn check_peers(&self) {
        #[cfg(not(loom))]
        self.check_signal_handler();
        if !self.multi {
            return;
        }
        let mut gone = Vec::new();
        if let (Some(n), Ok(mut w)) = (self.bells.node(), self.watch.try_lock()) {
            // Our watched peer: past it while it is gone (finished, or exited: then marked
            // dead for the whole node), to the next rank still running.
            while let Some((r, live)) = &w.target {
                let r = *r;
                if !self.node_peer_gone(n, r, live) {
                    break;
                }
                w.target = n
                    .next_local(r)
                    .map(|q| (q, Liveness::open(self.pids[q as usize])));
            }
            // The peers our requests wait on, probed directly: their watcher may be busy
            // computing. A death found here is published for the whole node too.
            let mut waited = Vec::new();
            self.inner
                .lock()
                .core
                .waited_peers(&mut waited, DIRECT_PROBES);
            for r in waited {
                if self.bells.route(r) == Route::Shm && !self.bells.finished(r) {
                    self.node_peer_gone(n, r, &Liveness::open(self.pids[r as usize]));
                }
            }
            let e = n.gone_epoch();
            if e != w.epoch {
                w.epoch = e;
                let Watch { seen, .. } = &mut *w;
                n.new_gone(seen, |r| {
                    if r != self.me {
                        gone.push(r)
                    }
                });
            }
        }
        if self.bells.has_tcp() {
            for r in 0..self.size {
                if self.bells.route(r) == Route::Tcp
                    && !self.gone[r as usize].load(Ordering::Relaxed)
                    && (self.bells.finished(r) || self.bells.died(r))
                {
                    gone.push(r);
                }
            }
        }
        gone.retain(|&r| !self.gone[r as usize].load(Ordering::Relaxed));
        if gone.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        for r in gone {
            if self.gone[r as usize].swap(true, Ordering::Relaxed) || g.core.is_dead(r) {
                continue;
            }
            // Re-read after the exit: `finished` is published before the process ends.
            let finished = self.bells.finished(r);
            self.drain_peer(&mut g, r);
            if finished {
                tracing::debug!(rank = r, "peer finished");
            } else {
                crate::diag::warn_once(
                    crate::diag::Warn::PeerExited,
                    format_args!(
                        "rank {r} (pid {}) exited without finishing: operations that need it fail with PeerDied",
                        self.bells.pid(r)
                    ),
                );
            }
            g.core.peer_gone(r, finished);
            // A rank that died fails every collective of its communicators (one that
            // finished cleanly sent its part: the core fails only the receives from it that
            // can no longer match).
            if !finished {
                self.died[r as usize].store(true, Ordering::Release);
                self.deaths.fetch_add(1, Ordering::Release);
                let Inner {
                    core, tx, colls, ..
                } = &mut *g;
                colls.peer_gone(core, tx, r);
            }
        }
        self.ring_bells(&mut g);
        self.unlock(g);
    }

    /// `true` if node peer `r` is gone: finished, or exited (watched through `live`), in
    /// which case it is marked dead in the node's gone bitmap unless it had finished.
    fn node_peer_gone(&self, n: &ShmNode, r: Rank, live: &Liveness) -> bool {
        if self.bells.finished(r) {
            return true;
        }
        if !live.exited() {
            return false;
        }
        // Re-read after the exit: `finished` is published before the process ends.
        if !self.bells.finished(r) {
            n.mark_gone(r);
        }
        true
    }

    /// Handles every record `peer` published, without the per-pass batch limit (ordinary
    /// context: the unexpected queue may grow).
    fn drain_peer(&self, inner: &mut Inner, peer: Rank) {
        let Inner { core, tx, rx, .. } = inner;
        core.no_alloc = false;
        if rx.drain(core, tx, peer).is_err() {
            self.fail_malformed(core, peer);
        }
    }

    /// Signal mode: warns (once) if the application replaced tocsin's handler or blocked its
    /// signal ([`signal::Installed::check`]); interrupts are then lost and only waits make
    /// progress. Fallback: this rank's `irq_pending` is held at 1, so peers stop sending the
    /// signal (they coalesce on the pending mark) and the application's handler or signalfd
    /// no longer receives tocsin's signals; sleeping waits still get doorbells (block mode).
    /// If the signal was only blocked, the queued one reaches tocsin's handler once it is
    /// unblocked and its acknowledgement re-enables interrupts.
    #[cfg(not(loom))]
    fn check_signal_handler(&self) {
        let Some(sig) = &self._signal else {
            return;
        };
        if let Err(why) = sig.check() {
            self.bells.me().irq_pending.store(1, Ordering::SeqCst);
            crate::diag::warn_once(
                crate::diag::Warn::SignalStolen,
                format_args!("{why}; meanwhile this rank progresses only inside tocsin calls"),
            );
        }
    }

    /// Blocks until `h` completes, according to the progress mode.
    pub(crate) fn wait(&self, h: &ReqHandle) -> Result<Status> {
        self.wait_until(|| h.is_complete(), None);
        self.outcome(h)
    }

    /// Requests cancellation of `h` ([`Core::cancel`]); `true` if it was cancelled.
    pub(crate) fn cancel(&self, h: &ReqHandle) -> bool {
        self.locked(|core, _| core.cancel(h))
    }

    /// The one waiting routine: every blocking call (wait, wait_all, wait_any, probe,
    /// barrier, sendrecv, a closing scope, the progress thread) waits here until `done()`
    /// holds or `deadline` passes, making progress; peers are checked every
    /// [`LIVENESS_PERIOD`], so a request that depends on a gone peer completes with
    /// `PeerDied` within about that; in the sleeping modes the thread sleeps on the doorbell
    /// after the spin budget. Returns whether `done()` held.
    pub(crate) fn wait_until(
        &self,
        mut done: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        if done() {
            return true;
        }
        // Only interrupt modes need peers to know that we poll: poll-mode waits pay nothing.
        let ctl = Some(self.bells.me()).filter(|_| self.cfg.progress.interrupts());
        if let Some(c) = ctl {
            c.polling.fetch_add(1, Ordering::SeqCst);
            self.socket_signals();
        }
        let app = self.cfg.progress == ProgressMode::Thread && !PROGRESS_THREAD.with(|p| p.get());
        if app {
            self.app_enters();
        }
        let ok = self.wait_loop(&mut done, deadline);
        if app {
            self.app_leaves();
        }
        if let Some(c) = ctl {
            // Leaving: from now on peers must interrupt us; re-poll once so that a record
            // published before they could see it is not left behind (Dekker, see
            // `crate::interrupt`).
            c.polling.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            self.socket_signals();
            self.request_progress(false);
        }
        ok
    }

    /// How long a waiting thread spins before it sleeps (`block` mode and up): the
    /// configured `TOCSIN_SPIN_US` if any, none on an oversubscribed node, else a small
    /// multiple of the wake-up cost measured at `init`, bounded (see [`spin`]). The one
    /// place the wait loop and the progress thread take it from.
    pub(crate) fn spin_budget(&self) -> Duration {
        self.spin
    }

    /// `thread` mode: the progress thread may park while the application waits. Not with
    /// TCP peers: their sockets are watched by the progress thread only (the application's
    /// threads sleep on the doorbell futex), and a parked thread watches nothing but the
    /// doorbell.
    fn pt_may_park(&self) -> bool {
        self.multi && !self.bells.has_tcp()
    }

    /// `thread` mode, an application thread entering a wait: it progresses the rank itself
    /// from now on; if the parked progress thread was armed on its doorbell on its behalf,
    /// disarm it (peers need not ring it while we poll).
    fn app_enters(&self) {
        self.app_waiting.fetch_add(1, Ordering::SeqCst);
        if self.pt_armed.load(Ordering::Relaxed) && self.pt_armed.swap(false, Ordering::SeqCst) {
            self.bells
                .me()
                .pt_watch
                .fetch_sub(self.pt_level, Ordering::SeqCst);
        }
    }

    /// `thread` mode, an application thread leaving a wait. The last one out hands the
    /// watch back to the progress thread without waking it (no system call): it raises
    /// `pt_watch` on the parked thread's behalf (by `pt_level`), so that the next record a
    /// peer pushes (on an oversubscribed node: the next record that asks this rank to act,
    /// see [`interrupt::watcher_rings`]) rings the doorbell it is parked on (`pt_bell`), then
    /// re-polls once so that a record published before the peers could see it is not left
    /// behind (Dekker with the producers' check of `pt_watch`), and asks the consumers of
    /// rings our records wait for to say when they free space (that rings it too). Dekker
    /// with [`Engine::park`] on `app_waiting` / `pt_parked`: either the progress thread sees
    /// no waiter and does not park, or this sees it parked.
    fn app_leaves(&self) {
        if self.app_waiting.fetch_sub(1, Ordering::SeqCst) != 1
            || !self.pt_parked.load(Ordering::SeqCst)
        {
            return;
        }
        let c = self.bells.me();
        c.pt_watch.fetch_add(self.pt_level, Ordering::SeqCst);
        if self.pt_armed.swap(true, Ordering::SeqCst) {
            // Already armed (a hand-off nobody took back yet): one count is enough.
            c.pt_watch.fetch_sub(self.pt_level, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        // The re-poll; if another thread holds the lock, it runs one more pass when it
        // releases it (`pending`, as in `request_progress`), so the re-poll is not lost.
        loop {
            if let Some(mut g) = self.inner.try_lock() {
                g.core.receiver_waiting = false;
                self.pass(&mut g);
                let Inner { core, tx, .. } = &mut *g;
                self.bells.ask_for_space(core, tx);
                self.ring_bells(&mut g);
                self.unlock(g);
                return;
            }
            self.pending.store(true, Ordering::SeqCst);
            if self.inner.is_locked() {
                return;
            }
        }
    }

    /// `thread` mode's progress thread: parks on its own doorbell futex (`pt_bell`), *not*
    /// armed (peers do not ring it; the rings and completions meant for the rank's waiting
    /// threads do not reach it), while application threads of the rank wait in tocsin: they
    /// make the progress then, and a progress thread that spun or woke beside them would
    /// take a core from them (or from another rank on a full node). Leaves when a peer rings
    /// it once none waits any more (the last one out armed the doorbell for it), at
    /// `stop()`, or after [`MAX_SLEEP`].
    fn park(&self, stop: &dyn Fn() -> bool) {
        let c = self.bells.me();
        let seq = c.pt_bell.load(Ordering::Acquire);
        self.pt_parked.store(true, Ordering::SeqCst);
        if !stop() && self.app_waiting.load(Ordering::SeqCst) > 0 {
            stats::bump(stats::Counter::Sleeps);
            self.bells.sleep_pt(seq, MAX_SLEEP);
        }
        self.pt_parked.store(false, Ordering::SeqCst);
        if self.pt_armed.swap(false, Ordering::SeqCst) {
            c.pt_watch.fetch_sub(self.pt_level, Ordering::SeqCst);
        }
    }

    /// Interrupt modes with TCP peers: the sockets raise the rank's signal only while no
    /// thread of it waits (a waiting thread reads them itself; a signal per segment would
    /// only slow it down). Applied under the engine lock from the current `polling` count,
    /// so the last change wins; data that arrived while they were quiet is read by the
    /// re-poll that follows leaving a wait.
    fn socket_signals(&self) {
        if !self.bells.has_tcp() {
            return;
        }
        let mut g = self.inner.lock();
        let on = self.bells.me().polling.load(Ordering::SeqCst) == 0;
        g.tx.socket_signals(on);
        drop(g);
    }

    /// `thread` mode's loop until `stop()`: while application threads of the rank wait in
    /// tocsin, park ([`Engine::park`]); otherwise progress as a wait does (spin the
    /// [`Engine::spin_budget`], none when oversubscribed, then sleep armed on its own
    /// doorbell: [`Engine::sleep_watching`]).
    pub(crate) fn progress_until(&self, stop: &dyn Fn() -> bool) {
        PROGRESS_THREAD.with(|p| p.set(true));
        if !self.pt_may_park() {
            self.wait_until(stop, None);
            return;
        }
        while !stop() {
            if self.app_waiting.load(Ordering::SeqCst) > 0 {
                self.park(stop);
            } else {
                self.wait_until(
                    || stop() || self.app_waiting.load(Ordering::Relaxed) > 0,
                    None,
                );
            }
        }
    }

    fn wait_loop(&self, done: &mut impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
        // The clock is read only once a wait lasts (every `every` passes): a short wait, the
        // common case of a ping-pong, pays no clock read (~25 ns on a KVM guest).
        let mut start: Option<Instant> = None;
        // Oversubscribed: a core spun on is a core taken from a rank that has work. Every
        // pass is followed by a yield (as Open MPI's `mpi_yield_when_idle`): poll mode only
        // yields; the sleeping modes (no spin budget then) yield once, which lets the ranks
        // sharing the core run (and often send what we wait for) before we pay a sleep and
        // a doorbell, then sleep.
        let spin = self.spin_budget();
        // A power of two: the test below is a mask, not a division in every pass.
        let every: u32 = if self.oversubscribed { 1 } else { 128 };
        let mut n = 0u32;
        loop {
            self.progress_waiting(false);
            if done() {
                return true;
            }
            n = n.wrapping_add(1);
            if self.oversubscribed {
                std::thread::yield_now();
            }
            if n & (every - 1) == 0 {
                let now = Instant::now();
                self.maybe_check_peers();
                if done() {
                    return true;
                }
                if deadline.is_some_and(|d| now >= d) {
                    return false;
                }
                let began = *start.get_or_insert(now);
                if self.cfg.progress.sleeps() && now - began >= spin {
                    self.sleep(done);
                    if done() {
                        return true;
                    }
                }
            }
        }
    }

    /// Arms the doorbell, re-polls, sleeps until rung (or [`MAX_SLEEP`]), disarms. Does not
    /// sleep while records wait unread in our rings; our records waiting for ring space do
    /// not keep us awake: their consumers ring us when they free it.
    fn sleep(&self, done: &mut impl FnMut() -> bool) {
        if !self.multi {
            std::thread::sleep(Duration::from_micros(100));
            return;
        }
        if self.pt_may_park() && PROGRESS_THREAD.with(|p| p.get()) {
            self.sleep_watching(done);
            return;
        }
        let c = self.bells.me();
        let seq = c.bell.load(Ordering::Acquire);
        // Armed before we stop polling: a sender always sees one of the two.
        let interrupts = self.cfg.progress.interrupts();
        c.sleepers.fetch_add(1, Ordering::SeqCst);
        if interrupts {
            c.polling.fetch_sub(1, Ordering::SeqCst);
        }
        match self.progress_waiting(true) {
            Found::Ran { unread: false, .. } if !done() => {
                stats::bump(stats::Counter::Sleeps);
                // In thread mode only the progress thread watches the sockets (epoll wakes
                // one of several sleepers per event); the application's threads sleep on
                // the doorbell futex, which the progress thread rings when it completes a
                // request (`pass_ctx`).
                let sockets =
                    self.cfg.progress != ProgressMode::Thread || PROGRESS_THREAD.with(|p| p.get());
                self.bells.sleep(seq, MAX_SLEEP, sockets);
            }
            Found::Busy => std::thread::yield_now(),
            _ => {}
        }
        if interrupts {
            c.polling.fetch_add(1, Ordering::SeqCst);
        }
        c.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// `thread` mode's progress thread (when it parks, see [`Engine::pt_may_park`]): arms its
    /// own doorbell (`pt_watch += pt_level`: every record, or on an oversubscribed node only
    /// those that ask this rank to act), re-polls (asking for ring space), sleeps on
    /// `pt_bell` until rung (or [`MAX_SLEEP`]), disarms. Same Dekker as [`Engine::sleep`],
    /// on `pt_watch`; the rings meant for the rank's waiting threads do not wake it.
    fn sleep_watching(&self, done: &mut impl FnMut() -> bool) {
        let c = self.bells.me();
        let seq = c.pt_bell.load(Ordering::Acquire);
        c.pt_watch.fetch_add(self.pt_level, Ordering::SeqCst);
        match self.progress_waiting(true) {
            Found::Ran { unread: false, .. } if !done() => {
                stats::bump(stats::Counter::Sleeps);
                self.bells.sleep_pt(seq, MAX_SLEEP);
            }
            Found::Busy => std::thread::yield_now(),
            _ => {}
        }
        c.pt_watch.fetch_sub(self.pt_level, Ordering::SeqCst);
    }

    /// One progress pass; `Some(())` if `h` has completed. Also checks peers (at most every
    /// [`LIVENESS_PERIOD`]), so that a loop of tests on a request whose peer is gone ends.
    pub(crate) fn test(&self, h: &ReqHandle) -> Option<()> {
        if !h.is_complete() {
            let _ = self.progress_once();
            if !h.is_complete() {
                self.maybe_check_peers();
            }
        }
        h.is_complete().then_some(())
    }

    /// The status of a matching message that has arrived, if any.
    ///
    /// # Errors
    /// [`Error::PeerDied`] if none has and none can any more: `src` is gone, or `src` is
    /// `ANY_SOURCE` and every other rank is gone.
    pub(crate) fn iprobe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<Option<Status>> {
        self.probe_pass(src, |core| core.iprobe(src, tag, ctx))
    }

    pub(crate) fn probe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<Status> {
        self.probe_wait(|| self.iprobe(src, tag, ctx))
    }

    /// The body of the probes: a progress pass, then `look` at the core; when it finds
    /// nothing, `PeerDied` if nothing can come any more from `src` (or, for `ANY_SOURCE`,
    /// from anyone).
    fn probe_pass<T>(
        &self,
        src: Rank,
        look: impl FnOnce(&mut Core) -> Option<T>,
    ) -> Result<Option<T>> {
        self.maybe_check_peers();
        let mut g = self.inner.lock();
        g.core.receiver_waiting = false;
        self.pass(&mut g);
        let found = look(&mut g.core);
        let gone = if src == crate::ANY_SOURCE {
            g.core.all_others_gone().then(|| g.core.last_gone())
        } else {
            (src != self.me && g.core.is_dead(src)).then_some(src)
        };
        self.unlock(g);
        match (found, gone) {
            (None, Some(r)) => Err(self.peer_died(r)),
            (found, _) => Ok(found),
        }
    }

    /// Waits (the engine's one waiting routine) until `try_once` finds something or fails.
    fn probe_wait<T>(&self, mut try_once: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let mut res = None;
        self.wait_until(
            || match try_once() {
                Ok(None) => false,
                r => {
                    res = Some(r);
                    true
                }
            },
            None,
        );
        match res {
            Some(Ok(Some(v))) => Ok(v),
            Some(Err(e)) => Err(e),
            _ => Err(Error::Unsupported(
                "internal: probe ended without a result".into(),
            )),
        }
    }
}

thread_local! {
    /// A receive cell kept by this thread for its next blocking receive.
    static SPARE_CELL: std::cell::Cell<Option<ReqHandle>> = const { std::cell::Cell::new(None) };
}

/// Keeps `h` (a completed blocking receive's cell) for this thread's next blocking receive,
/// if nobody else holds it (the core drops its reference when it completes a request).
/// Ordinary context only.
pub(crate) fn recycle_cell(mut h: ReqHandle) {
    if !h.is_complete() || !h.is_recv() {
        return;
    }
    if let Some(m) = Arc::get_mut(&mut h) {
        m.reset();
        let _ = SPARE_CELL.try_with(|c| c.set(Some(h)));
    }
}

/// A rank of a multi-rank job whose `init` failed after joining the job ends the job
/// through the launcher (PMI `abort`, as MPI's default error handler does): otherwise the
/// other ranks would wait for it in the bootstrap's barriers forever (hydra and Slurm do
/// not end a job when one rank merely exits). The error is printed first, naming the rank.
fn abort_job(cell: &Mutex<Option<Pmi>>, e: &Error) {
    let Ok(mut g) = cell.lock() else { return };
    let Some(p) = g.as_mut() else { return };
    if p.size() <= 1 || matches!(e, Error::AlreadyInitialized) {
        return;
    }
    let msg = format!("tocsin: rank {} failed to start: {e}", p.rank());
    eprintln!("{msg}; ending the job");
    let _ = p.abort(1, &msg);
    // The launcher kills the job; should it not, leave rather than let the application go
    // on alone in a job that cannot start.
    std::thread::sleep(Duration::from_secs(5));
    std::process::exit(1);
}

/// `uintr` mode set-up on the registered (calling) thread: handler, vector fd published
/// through PMI, sender registration to every peer.
fn uintr_setup(
    p: &mut Pmi,
    me: Rank,
    size: u32,
    local: &[Rank],
) -> Result<(uintr::Senders, (std::os::fd::OwnedFd, i32))> {
    use std::os::fd::AsRawFd;
    #[cfg(target_arch = "x86_64")]
    uintr::register_handler()
        .map_err(|e| Error::Unsupported(uintr::explain("uintr_register_handler", &e)))?;
    let fd = uintr::vector_fd(uintr::VECTOR)
        .map_err(|e| Error::Unsupported(uintr::explain("uintr_vector_fd", &e)))?;
    p.put(
        &format!("tocsin.uvec.{me}"),
        &format!("{}:{}", std::process::id(), fd.as_raw_fd()),
    )?;
    p.barrier()?;
    // SENDUIPI reaches threads of this node only: peers of other nodes are interrupted by
    // their kernel (socket signals).
    let mut peers = Vec::new();
    for &r in local {
        let v = p.get(&format!("tocsin.uvec.{r}"))?;
        let (pid, f) = v
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| Error::Pmi(format!("malformed vector fd {v:?} from rank {r}")))?;
        peers.push((r, pid, f));
    }
    let senders = uintr::Senders::register(me, size, &peers, &mut uintr::KernelRegistrar)?;
    Ok((senders, (fd, signal::gettid())))
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some((_fd, tid)) = &self.uintr_rx {
            if *tid == signal::gettid() {
                uintr::unregister_handler();
            }
        }
        if let Some(p) = self.pmi.lock().ok().and_then(|mut p| p.take()) {
            if let Err(e) = p.finalize() {
                crate::diag::warn_once(
                    crate::diag::Warn::Other,
                    format_args!("PMI finalize failed: {e}"),
                );
            }
        }
    }
}

/// More ranks on this node than online CPUs: the launcher's `MPI_LOCALNRANKS` (set by
/// `tocsin run` and hydra) above `sysconf(_SC_NPROCESSORS_ONLN)`.
fn detect_oversubscription() -> bool {
    let local: Option<usize> = std::env::var("MPI_LOCALNRANKS")
        .ok()
        .and_then(|v| v.parse().ok());
    matches!(local, Some(l) if l > crate::sys::online_cpus())
}
