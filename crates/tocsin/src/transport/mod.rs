//! Transports: how records reach each peer, and how a peer is woken or interrupted.
//!
//! Each peer is served by exactly one transport ([`Route`], chosen from the node map in
//! [`node`]): `self` (the protocol core matches self-sends directly), `shm` (ranks of this
//! node: inboxes and fast rings in the node's segment, single copy through CMA) or `tcp` (ranks of
//! other nodes, or every rank under `TOCSIN_NOLOCAL=1`). A transport has two halves, as
//! NewMadeleine's drivers (post and poll): the sending half is reached through [`Tx`], the
//! [`Driver`] the protocol core pushes records through, and the receiving half through
//! [`Rx::poll`], which hands every received record to the core. Each transport states its
//! limits ([`Limits`]: largest record, single copy or not).
//!
//! [`Bells`] is the part shared outside the engine lock: this rank's published wait state
//! (sleepers, polling, the doorbell), how it wakes a sleeping peer of its node (futex, or a
//! datagram when that peer sleeps in `epoll_wait`) and interrupts a computing one (signal or
//! SENDUIPI), and how this rank sleeps. Peers on other nodes are woken and interrupted by
//! their own kernel when data arrives on their socket.
//!
//! This module owns routing and the transports; it must not match messages or keep request
//! state (that is [`crate::protocol`]) nor decide when to wait (that is `crate::progress`,
//! which names no transport).

pub(crate) mod node;
pub(crate) mod shm;
pub(crate) mod tcp;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{Core, Driver};
use crate::wire::Header;
use crate::Rank;

pub(crate) use node::Route;
use shm::{Control, ShmNode, ShmRx, ShmTx};
use tcp::{TcpRx, TcpTx};

/// Records taken from one peer per progress pass, for fairness.
pub(crate) const BATCH: usize = 64;

/// What a transport can carry toward a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest record (header + payload), bytes.
    pub max_record: usize,
    /// Whether single-copy transfers (CMA) are possible.
    pub single_copy: bool,
}

/// What one progress pass left behind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassOut {
    /// Some record was handled.
    pub did: bool,
    /// Some peer still has records for us (a batch limit was hit, or a handler left one it
    /// could not take): the rank must not sleep.
    pub unread: bool,
}

/// The engine's state a poll reports to (shared outside the engine lock).
pub(crate) struct PollCx<'a> {
    /// The pass runs in a signal or interrupt handler: no allocation, no logging.
    pub handler: bool,
    /// The progress mode sleeps on doorbells (producers asked for space are rung).
    pub sleeps: bool,
    /// The progress mode interrupts computing peers.
    pub interrupts: bool,
    /// Set when a handler left a record it could not store without allocating.
    pub stalled: &'a AtomicBool,
    /// Peers that sent something malformed, failed by the next ordinary pass.
    pub bad_peers: &'a [AtomicBool],
    /// Set with any flag of `bad_peers`: the ordinary pass scans them only then.
    pub any_bad: &'a AtomicBool,
    /// Set to have the lock holder run another pass.
    pub pending: &'a AtomicBool,
}

impl PollCx<'_> {
    /// Records that `p` sent something malformed (async-signal-safe): the next ordinary
    /// pass fails it.
    pub(crate) fn bad_peer(&self, p: Rank) {
        if let Some(b) = self.bad_peers.get(p as usize) {
            b.store(true, Ordering::Relaxed);
            self.any_bad.store(true, Ordering::Release);
        }
        self.pending.store(true, Ordering::SeqCst);
    }
}

/// The sending halves of this rank's transports, routed per peer: the [`Driver`] the
/// protocol core pushes through.
pub(crate) struct Tx {
    route: Vec<Route>,
    shm: Option<ShmTx>,
    tcp: Option<TcpTx>,
    /// Ordinary context (not a handler): transports may allocate, connect, block briefly.
    /// The engine clears it for the whole of a pass run in a handler.
    pub(crate) ordinary: bool,
}

impl Tx {
    /// The limits of the transport serving `peer`.
    pub(crate) fn limits(&self, peer: Rank) -> Limits {
        match (self.route.get(peer as usize), &self.shm) {
            (Some(Route::Shm), Some(s)) => Limits {
                max_record: s.max_record(peer),
                single_copy: true,
            },
            (Some(Route::Tcp), _) => Limits {
                max_record: tcp::MAX_RECORD,
                single_copy: false,
            },
            _ => Limits {
                max_record: 1 << 20,
                single_copy: false,
            },
        }
    }
}

impl Tx {
    /// Whether TCP sockets raise the rank's signal when data arrives (`O_ASYNC`).
    pub(crate) fn socket_signals(&mut self, on: bool) {
        if let Some(t) = &mut self.tcp {
            t.socket_signals(on);
        }
    }
}

impl Driver for Tx {
    fn try_push(&mut self, peer: Rank, hdr: &Header, payload: &[u8]) -> bool {
        match self.route.get(peer as usize) {
            Some(Route::Shm) => match &mut self.shm {
                Some(s) => s.try_push(peer, hdr, payload),
                None => crate::diag::fatal("transport: no shm transport for a node peer"),
            },
            Some(Route::Tcp) => match &mut self.tcp {
                Some(t) => t.try_push(peer, hdr, payload, self.ordinary),
                None => crate::diag::fatal("transport: no tcp transport for a remote peer"),
            },
            _ => crate::diag::fatal("transport: a record pushed toward a rank with no transport"),
        }
    }
    fn max_record(&self, peer: Rank) -> usize {
        self.limits(peer).max_record
    }
    fn grow(&mut self, peer: Rank, len: usize) {
        if let (Some(Route::Shm), Some(s)) = (self.route.get(peer as usize), &mut self.shm) {
            s.grow(peer, len);
        }
    }
    fn chunk(&self, peer: Rank, configured: usize) -> usize {
        match self.route.get(peer as usize) {
            Some(Route::Tcp) => tcp::CHUNK,
            _ => configured,
        }
    }
    fn cma_read(&mut self, peer: Rank, remote: u64, local: &mut [u8]) -> std::io::Result<()> {
        match (self.route.get(peer as usize), &mut self.shm) {
            (Some(Route::Shm), Some(s)) => s.cma_read(peer, remote, local),
            _ => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        }
    }
    fn cma_write(&mut self, peer: Rank, remote: u64, local: &[u8]) -> std::io::Result<()> {
        match (self.route.get(peer as usize), &mut self.shm) {
            (Some(Route::Shm), Some(s)) => s.cma_write(peer, remote, local),
            _ => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        }
    }
}

/// The receiving halves of this rank's transports.
pub(crate) struct Rx {
    shm: Option<ShmRx>,
    tcp: Option<TcpRx>,
}

impl Rx {
    /// One pass over every transport: every record received goes to `core` (up to
    /// [`BATCH`] per peer). Async-signal-safe when `cx.handler`.
    pub(crate) fn poll(
        &mut self,
        core: &mut Core,
        tx: &mut Tx,
        bells: &Bells,
        cx: &PollCx<'_>,
    ) -> PassOut {
        let mut out = PassOut::default();
        if let (Some(rx), Some(node)) = (&mut self.shm, &bells.node) {
            rx.poll(core, tx, node, cx, &mut out);
        }
        if let Some(rx) = &mut self.tcp {
            let (did, unread, stalled) = rx.poll(core, tx, !cx.handler, BATCH, &|p| cx.bad_peer(p));
            out.did |= did;
            out.unread |= unread;
            if stalled {
                cx.stalled.store(true, Ordering::SeqCst);
            }
        }
        out
    }

    /// Handles every record `peer` sent that is still unread, without the batch limit
    /// (ordinary context). `Err` if one is malformed.
    pub(crate) fn drain(
        &mut self,
        core: &mut Core,
        tx: &mut Tx,
        peer: Rank,
    ) -> std::result::Result<(), ()> {
        match tx.route.get(peer as usize) {
            Some(Route::Shm) => match &mut self.shm {
                Some(rx) => rx.drain(core, tx, peer),
                None => Ok(()),
            },
            Some(Route::Tcp) => match &mut self.tcp {
                Some(rx) => rx.drain(core, tx, peer),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Says goodbye to every TCP peer (this rank finished cleanly): `BYE` on each
    /// connection, then the write side is shut.
    pub(crate) fn bye(&mut self, tx: &mut Tx) {
        if let Some(t) = &mut tx.tcp {
            t.bye();
        }
    }
}

/// This rank's published wait state and its ways to wake and interrupt peers; shared
/// outside the engine lock. See the module documentation.
pub(crate) struct Bells {
    me: Rank,
    route: Vec<Route>,
    /// This rank's node (absent in a world of one).
    node: Option<ShmNode>,
    /// This rank's control block when it has no node segment.
    own: Box<Control>,
    /// What became of each peer served by TCP ([`tcp::ALIVE`], [`tcp::FINISHED`],
    /// [`tcp::DIED`]), written by the TCP transport.
    tcp_ends: Arc<[AtomicU8]>,
    /// Pids of TCP peers once known (for messages).
    tcp_pids: Arc<[AtomicI32]>,
    /// Ranks with TCP peers sleep in `epoll_wait` on this set (sockets, doorbell socket).
    epoll: Option<OwnedFd>,
    /// This rank's doorbell socket (with `epoll`): node peers ring it too.
    bell_rx: Option<OwnedFd>,
    /// The TCP endpoint, until [`Bells::transports`] splits it into halves.
    tcp: Option<tcp::Endpoint>,
}

impl Bells {
    /// The bells of a world of one.
    pub(crate) fn alone() -> Bells {
        Bells {
            me: 0,
            route: vec![Route::SelfRank],
            node: None,
            own: Box::new(Control::zeroed()),
            tcp_ends: Arc::from(vec![AtomicU8::new(0)]),
            tcp_pids: Arc::from(vec![AtomicI32::new(0)]),
            epoll: None,
            bell_rx: None,
            tcp: None,
        }
    }

    /// Bells over `node`, routing by `route` (indexed by rank).
    pub(crate) fn new(me: Rank, route: Vec<Route>, node: ShmNode) -> Bells {
        let n = route.len();
        Bells {
            me,
            route,
            node: Some(node),
            own: Box::new(Control::zeroed()),
            tcp_ends: (0..n).map(|_| AtomicU8::new(0)).collect(),
            tcp_pids: (0..n).map(|_| AtomicI32::new(0)).collect(),
            epoll: None,
            bell_rx: None,
            tcp: None,
        }
    }

    /// Adds the TCP transport: this rank will sleep in `epoll_wait` over its sockets and
    /// its doorbell socket, which node peers ring.
    ///
    /// # Errors
    /// [`crate::Error::Io`] if the epoll set or the doorbell socket cannot be made.
    pub(crate) fn add_tcp(&mut self, mut ep: tcp::Endpoint) -> crate::Result<()> {
        let epfd = crate::sys::epoll_create().map_err(|e| crate::Error::io("epoll_create1", e))?;
        ep.watch(epfd.as_raw_fd());
        if let Some(n) = &mut self.node {
            let rx = n
                .bind_bell_socket()
                .map_err(|e| crate::Error::io("binding the doorbell socket", e))?;
            crate::sys::epoll_add(epfd.as_raw_fd(), rx.as_raw_fd(), false)
                .map_err(|e| crate::Error::io("epoll_ctl", e))?;
            self.bell_rx = Some(rx);
        }
        self.epoll = Some(epfd);
        self.tcp = Some(ep);
        Ok(())
    }

    /// The two halves of every transport.
    pub(crate) fn transports(&mut self) -> (Tx, Rx) {
        let (stx, srx) = match &self.node {
            Some(n) => {
                let (t, r) = n.halves();
                (Some(t), Some(r))
            }
            None => (None, None),
        };
        let (ttx, trx) = match self.tcp.take() {
            Some(ep) => {
                let (t, r) = ep.halves(self.tcp_ends.clone(), self.tcp_pids.clone());
                (Some(t), Some(r))
            }
            None => (None, None),
        };
        if let Some(n) = &mut self.node {
            // Node peers may sleep in epoll_wait (they have TCP peers): be ready to ring them.
            n.prepare_bell_sockets();
        }
        (
            Tx {
                route: self.route.clone(),
                shm: stx,
                tcp: ttx,
                ordinary: true,
            },
            Rx { shm: srx, tcp: trx },
        )
    }

    /// `true` if some peers are served by TCP.
    pub(crate) fn has_tcp(&self) -> bool {
        self.epoll.is_some()
    }

    /// The node view (for start-up: interrupter, pids).
    pub(crate) fn node_mut(&mut self) -> Option<&mut ShmNode> {
        self.node.as_mut()
    }

    /// The node view.
    pub(crate) fn node(&self) -> Option<&ShmNode> {
        self.node.as_ref()
    }

    /// How `peer` is reached.
    pub(crate) fn route(&self, peer: Rank) -> Route {
        self.route
            .get(peer as usize)
            .copied()
            .unwrap_or(Route::SelfRank)
    }

    /// This rank's published wait state.
    pub(crate) fn me(&self) -> &Control {
        match &self.node {
            Some(n) => n.me(),
            None => &self.own,
        }
    }

    /// After pushing records to `peer`: ring it if it sleeps, interrupt it if it computes
    /// and `interrupts` (interrupt modes, urgent records), ring its progress thread if that
    /// watches for them (`urgent`: a record asks the peer to act; see
    /// [`crate::interrupt::watcher_rings`]). Peers of other nodes need nothing: their kernel
    /// wakes or signals them when the data arrives. Async-signal-safe.
    pub(crate) fn notify(&self, peer: Rank, sleeps: bool, interrupts: bool, urgent: bool) {
        if let (Route::Shm, Some(n)) = (self.route(peer), &self.node) {
            n.notify(peer, sleeps, interrupts, urgent);
        }
    }

    /// Rings `peer`'s doorbell (a node peer), whatever its state.
    pub(crate) fn wake(&self, peer: Rank) {
        if let (Route::Shm, Some(n)) = (self.route(peer), &self.node) {
            n.wake(peer);
        }
    }

    /// Rings this rank's own doorbell (wakes its sleeping threads).
    pub(crate) fn wake_me(&self) {
        match &self.node {
            Some(n) => {
                // One datagram per sleeping thread when they sleep in epoll_wait (see
                // `Bells::sleep`).
                let k = self.me().sleepers.load(Ordering::SeqCst).clamp(1, 64);
                n.wake_n(self.me, k);
            }
            None => {
                let c = self.me();
                c.bell.fetch_add(1, Ordering::Release);
                crate::sys::futex_wake_all(&c.bell);
            }
        }
    }

    /// `true` if `peer` finished cleanly: published it in its control block (node peers) or
    /// said `BYE` (TCP peers).
    pub(crate) fn finished(&self, peer: Rank) -> bool {
        match (self.route(peer), &self.node) {
            (Route::Shm, Some(n)) => n.control(peer).finished.load(Ordering::Acquire) != 0,
            (Route::Tcp, _) => self.tcp_end(peer) == tcp::FINISHED,
            _ => false,
        }
    }

    /// `true` if `peer` (a node peer) sleeps on its doorbell now.
    pub(crate) fn sleeping(&self, peer: Rank) -> bool {
        match (self.route(peer), &self.node) {
            (Route::Shm, Some(n)) => n.control(peer).sleepers.load(Ordering::SeqCst) > 0,
            _ => false,
        }
    }

    /// Rings this rank's progress-thread doorbell (`thread` mode: wakes the progress thread
    /// if it sleeps on it, armed or parked).
    pub(crate) fn wake_me_pt(&self) {
        match &self.node {
            Some(n) => n.wake_pt(self.me),
            None => {
                let c = self.me();
                c.pt_bell.fetch_add(1, Ordering::Release);
                crate::sys::futex_wake_all(&c.pt_bell);
            }
        }
    }

    /// `true` if `peer`'s TCP connection ended without `BYE` (it died, or its host did).
    pub(crate) fn died(&self, peer: Rank) -> bool {
        self.route(peer) == Route::Tcp && self.tcp_end(peer) == tcp::DIED
    }

    fn tcp_end(&self, peer: Rank) -> u8 {
        self.tcp_ends
            .get(peer as usize)
            .map_or(tcp::ALIVE, |e| e.load(Ordering::Acquire))
    }

    /// Process id of `peer` (in its own PID namespace for TCP peers: once connected), or 0
    /// if not known yet.
    pub(crate) fn pid(&self, peer: Rank) -> i32 {
        match (self.route(peer), &self.node) {
            (Route::SelfRank, _) => std::process::id() as i32,
            (Route::Shm, Some(n)) => n.pid(peer),
            (Route::Tcp, _) => self
                .tcp_pids
                .get(peer as usize)
                .map_or(0, |p| p.load(Ordering::Relaxed)),
            _ => 0,
        }
    }

    /// `true` once (then cleared) if a signal could not be queued since the last call.
    pub(crate) fn take_sigqueue_full(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.take_sigqueue_full())
    }

    /// Records of ours wait for room toward some peers: asks each node peer concerned to
    /// tell us when it frees space, then, after a `SeqCst` fence, retries once, so that
    /// space freed meanwhile is not missed (Dekker with the consumer's
    /// `SegView::space_freed`, `ShmInbox::take_wanters`). Async-signal-safe.
    pub(crate) fn ask_for_space(&self, core: &mut Core, tx: &mut Tx) {
        if !core.has_backlog() {
            return;
        }
        if let (Some(n), Some(s)) = (&self.node, &tx.shm) {
            for q in n.peers() {
                if !core.flushed_to(q) {
                    s.want_space(q);
                }
            }
        }
        fence(Ordering::SeqCst);
        core.flush_all(tx);
    }

    /// Sleeps until this rank's doorbell moves from `seq` (or `max` passes, or a signal).
    /// With `sockets` false, sleeps on the doorbell futex only (a thread that leaves the
    /// sockets to another one).
    pub(crate) fn sleep(&self, seq: u32, max: Duration, sockets: bool) {
        match self.epoll.as_ref().filter(|_| sockets) {
            Some(ep) => {
                if self.me().bell.load(Ordering::Acquire) == seq {
                    crate::sys::epoll_wait(ep.as_raw_fd(), max);
                }
                // Doorbell datagrams are only wake-ups: drop them once awake (not on every
                // pass: a system call saved per pass). Threads sharing the epoll set are
                // woken one per event, and one may take the datagram meant for another that
                // was between its check and its `epoll_wait`: while other threads of the
                // rank sleep, take one datagram only ([`Bells::wake_me`] sends one per
                // sleeper).
                if let Some(fd) = &self.bell_rx {
                    if self.me().sleepers.load(Ordering::SeqCst) <= 1 {
                        crate::sys::drain_dgrams(fd.as_raw_fd());
                    } else {
                        crate::sys::drain_one_dgram(fd.as_raw_fd());
                    }
                }
            }
            None => crate::sys::futex_wait(&self.me().bell, seq, max),
        }
    }

    /// `thread` mode's progress thread: sleeps until its own doorbell (`pt_bell`) moves from
    /// `seq`, or `max` passes. Rings meant for the rank's other threads do not wake it.
    pub(crate) fn sleep_pt(&self, seq: u32, max: Duration) {
        crate::sys::futex_wait(&self.me().pt_bell, seq, max);
    }
}
