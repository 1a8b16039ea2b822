//! The progress engine: owns the protocol [`Core`], the shared-memory driver and the rings'
//! consuming ends, behind one lock, and implements each [`ProgressMode`]'s way of waiting.
//!
//! It must not parse headers or match messages (that is [`crate::protocol`]) nor know the
//! segment layout (that is `crate::shm`). Everything that blocks lives here, and every wait
//! has a way out: peers are checked for death (pidfd) at least every
//! [`LIVENESS_PERIOD`] while a wait lasts.
//!
//! - `poll`: `wait` calls [`Engine::progress_once`] in a loop.
//! - `block`: `wait` spins [`Config::spin_us`], then arms (`sleepers += 1`), re-polls, and
//!   sleeps on its doorbell futex; senders ring it only when armed, so the fast path has no
//!   system call.

mod lock;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::comm::Status;
use crate::config::{Config, ProgressMode};
use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::protocol::{Core, CoreConfig, Fail, ReqShared};
use crate::ring::{Consumer, ShmRing};
use crate::shm::{default_ring_bytes, Segment, ShmDriver};
use crate::sys::{self, PidFd};
use crate::{Rank, Tag};

use lock::SpinLock;

/// How often a waiting rank checks that its peers are alive.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(100);
/// Longest single sleep on the doorbell (then liveness is re-checked).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Records taken from one peer's ring per progress pass, for fairness.
const BATCH: usize = 64;

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The completion handle of a request.
pub(crate) type ReqHandle = Arc<ReqShared>;

struct Inner {
    core: Core,
    drv: ShmDriver,
    cons: Vec<Option<Consumer<ShmRing>>>,
}

/// One rank's progress engine.
pub(crate) struct Engine {
    cfg: Config,
    me: Rank,
    size: u32,
    inner: SpinLock<Inner>,
    pids: Vec<i32>,
    pidfds: Vec<Option<PidFd>>,
    pmi: Mutex<Option<Pmi>>,
    // Declared last: dropped after `inner`, whose rings point into it.
    seg: Option<Segment>,
}

impl Engine {
    pub(crate) fn init(cfg: Config) -> Result<Arc<Engine>> {
        if INITIALIZED.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyInitialized);
        }
        let r = Self::init_inner(cfg);
        if r.is_err() {
            INITIALIZED.store(false, Ordering::SeqCst);
        }
        r
    }

    fn init_inner(cfg: Config) -> Result<Arc<Engine>> {
        let mut pmi = Pmi::from_env()?;
        let (me, size) = pmi.as_ref().map_or((0, 1), |p| (p.rank(), p.size()));
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
        if cfg.cma {
            sys::allow_ptrace_any();
        }
        let mode = match cfg.progress {
            ProgressMode::Poll => 0,
            ProgressMode::Block => 1,
        };
        let seg = match pmi.as_mut() {
            Some(p) if size > 1 => Some(Segment::bootstrap(p, cap, mode, cfg.posix_shm)?),
            _ => None,
        };
        let (drv, cons) = ShmDriver::new(seg.as_ref(), me, size);
        let pids: Vec<i32> = (0..size).map(|r| drv.pid(r)).collect();
        let pidfds = (0..size)
            .map(|r| {
                if r == me {
                    None
                } else {
                    PidFd::open(pids[r as usize]).ok()
                }
            })
            .collect();
        let core = Core::new(CoreConfig {
            me,
            size,
            eager_threshold: cfg.eager_threshold,
            chunk: cfg.chunk_bytes,
            cma: cfg.cma,
            queue_capacity: 1024,
        });
        tracing::debug!(rank = me, size, ring_bytes = cap, mode = cfg.progress.name(), "tocsin initialized");
        Ok(Arc::new(Engine {
            cfg,
            me,
            size,
            inner: SpinLock::new(Inner { core, drv, cons }),
            pids,
            pidfds,
            pmi: Mutex::new(pmi),
            seg,
        }))
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

    /// Rings the doorbells of the peers this pass pushed records to (block mode only: in
    /// poll mode nobody sleeps, so not even the fence is paid).
    fn ring_bells(&self, inner: &mut Inner) {
        match (&self.seg, self.cfg.progress) {
            (Some(seg), ProgressMode::Block) => inner.core.take_touched(|p| seg.ring_bell(p)),
            _ => inner.core.take_touched(|_| {}),
        }
    }

    /// One progress pass over `inner`: drain every incoming ring (up to [`BATCH`] records
    /// each), retry queued sends, ring doorbells. Returns whether anything happened.
    fn pass(&self, inner: &mut Inner) -> bool {
        let mut did = false;
        let Inner { core, drv, cons } = inner;
        for (p, c) in cons.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let p = p as Rank;
            for _ in 0..BATCH {
                match c.pop_with(|rec| (true, core.on_record(drv, p, rec))) {
                    Ok(None) => break,
                    Ok(Some(Ok(_))) => did = true,
                    Ok(Some(Err(f))) => {
                        tracing::error!(peer = p, failure = ?f, "malformed record: treating the peer as failed");
                        core.fail_peer(p);
                        break;
                    }
                    Err(corrupt) => {
                        tracing::error!(peer = p, %corrupt, "corrupt ring: treating the peer as failed");
                        core.fail_peer(p);
                        break;
                    }
                }
            }
        }
        if core.has_backlog() {
            core.flush_all(drv);
        }
        self.ring_bells(inner);
        did
    }

    /// Makes progress if no other thread is doing it right now.
    pub(crate) fn progress_once(&self) -> Result<()> {
        if let Some(mut g) = self.inner.try_lock() {
            g.core.receiver_waiting = false;
            self.pass(&mut g);
        }
        Ok(())
    }

    fn progress_waiting(&self) {
        if let Some(mut g) = self.inner.try_lock() {
            g.core.receiver_waiting = true;
            self.pass(&mut g);
        }
    }

    pub(crate) fn post_send(&self, p: *const u8, len: usize, dest: Rank, tag: Tag, ctx: u16) -> Result<ReqHandle> {
        let mut g = self.inner.lock();
        let Inner { core, drv, .. } = &mut *g;
        let h = core.post_send(drv, p, len, dest, tag, ctx);
        self.ring_bells(&mut g);
        Ok(h)
    }

    pub(crate) fn post_recv(&self, p: *mut u8, len: usize, src: Rank, tag: Tag, ctx: u16) -> Result<ReqHandle> {
        self.post_recv_hint(p, len, src, tag, ctx, false)
    }

    /// Posts a receive; `blocking` tells the core its owner is about to wait (so a matched
    /// rendezvous is read here at once rather than answered with a CTS).
    pub(crate) fn post_recv_hint(
        &self,
        p: *mut u8,
        len: usize,
        src: Rank,
        tag: Tag,
        ctx: u16,
        blocking: bool,
    ) -> Result<ReqHandle> {
        let mut g = self.inner.lock();
        g.core.receiver_waiting = blocking;
        let Inner { core, drv, .. } = &mut *g;
        let h = core.post_recv(drv, p, len, src, tag, ctx);
        self.ring_bells(&mut g);
        Ok(h)
    }

    fn outcome(&self, h: &ReqShared) -> Result<Status> {
        let (st, fail) = h.outcome().expect("complete");
        match fail {
            None => Ok(st),
            Some(Fail::Truncated { message_len, buffer_len }) => Err(Error::Truncated {
                message_len,
                buffer_len,
                from: st.source,
                tag: st.tag,
            }),
            Some(Fail::PeerDied { rank }) => Err(Error::PeerDied {
                rank,
                pid: self.pids[rank as usize],
                me: self.me,
            }),
            Some(Fail::Malformed { rank, detail }) => Err(Error::Malformed {
                what: "record",
                from: rank,
                detail: detail.into(),
            }),
        }
    }

    /// Checks every peer's pidfd; marks the dead ones failed (completing their requests).
    fn check_peers(&self) {
        let dead: Vec<Rank> = self
            .pidfds
            .iter()
            .enumerate()
            .filter_map(|(r, f)| f.as_ref().filter(|f| f.exited()).map(|_| r as Rank))
            .collect();
        if dead.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        for r in dead {
            if !g.core.is_dead(r) {
                tracing::warn!(rank = r, pid = self.pids[r as usize], "peer exited");
                // Drain what it sent before dying, then fail what is left.
                self.pass(&mut g);
                g.core.fail_peer(r);
            }
        }
    }

    /// Blocks until `h` completes, according to the progress mode.
    pub(crate) fn wait(&self, h: &ReqHandle) -> Result<Status> {
        self.wait_until(|| h.is_complete());
        self.outcome(h)
    }

    /// Waits until `done()` holds, making progress; checks liveness every
    /// [`LIVENESS_PERIOD`]; in block mode sleeps on the doorbell after the spin budget.
    fn wait_until(&self, mut done: impl FnMut() -> bool) {
        if done() {
            return;
        }
        let start = Instant::now();
        let mut last_check = start;
        let spin = Duration::from_micros(self.cfg.spin_us);
        let mut n = 0u32;
        loop {
            self.progress_waiting();
            if done() {
                return;
            }
            n = n.wrapping_add(1);
            if n % 128 == 0 {
                let now = Instant::now();
                if now - last_check >= LIVENESS_PERIOD {
                    self.check_peers();
                    last_check = now;
                    if done() {
                        return;
                    }
                }
                if self.cfg.progress == ProgressMode::Block && now - start >= spin {
                    self.sleep(&mut done);
                    if done() {
                        return;
                    }
                }
            }
        }
    }

    /// Arms the doorbell, re-polls, sleeps until rung (or [`MAX_SLEEP`]), disarms.
    fn sleep(&self, done: &mut impl FnMut() -> bool) {
        let Some(seg) = &self.seg else {
            std::thread::sleep(Duration::from_micros(100));
            return;
        };
        let c = seg.control(self.me);
        let seq = c.bell.load(Ordering::Acquire);
        c.sleepers.fetch_add(1, Ordering::SeqCst);
        self.progress_waiting();
        let backlog = self.inner.try_lock().is_none_or(|g| g.core.has_backlog());
        if !done() && !backlog {
            sys::futex_wait(&c.bell, seq, MAX_SLEEP);
        } else if backlog {
            // Our records wait for ring space; the peer does not ring us when it consumes.
            std::thread::yield_now();
        }
        c.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn test(&self, h: &ReqHandle) -> Option<()> {
        if !h.is_complete() {
            let _ = self.progress_once();
        }
        h.is_complete().then_some(())
    }

    pub(crate) fn iprobe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<Option<Status>> {
        let mut g = self.inner.lock();
        g.core.receiver_waiting = false;
        self.pass(&mut g);
        let st = g.core.iprobe(src, tag, ctx);
        if st.is_none() && src != crate::ANY_SOURCE && g.core.is_dead(src) {
            return Err(Error::PeerDied {
                rank: src,
                pid: self.pids[src as usize],
                me: self.me,
            });
        }
        Ok(st)
    }

    pub(crate) fn probe(&self, src: Rank, tag: Tag, ctx: u16) -> Result<Status> {
        let mut found = None;
        let mut err = None;
        self.wait_until(|| match self.iprobe(src, tag, ctx) {
            Ok(Some(s)) => {
                found = Some(s);
                true
            }
            Ok(None) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        });
        match (found, err) {
            (Some(s), _) => Ok(s),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("probe wait ended without a result"),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(p) = self.pmi.get_mut().ok().and_then(|p| p.take()) {
            if let Err(e) = p.finalize() {
                tracing::warn!(error = %e, "PMI finalize failed");
            }
        }
    }
}
