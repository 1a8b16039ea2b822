//! The TCP transport: ranks of other nodes (or every rank under `TOCSIN_NOLOCAL=1`).
//!
//! Owns the listening socket, the connections, their framing and the handshake; it must not
//! interpret records (that is the protocol core) nor decide when to wait.
//!
//! - **Connections** are opened on first use (a job whose ranks never talk opens none): the
//!   rank that first sends to a peer fetches the peer's address from the PMI key-value space
//!   (`tocsin.tcp.<rank>`, `pid@ip:port`) and connects; one connection serves the pair both ways.
//!   When two ranks connect to each other at once, each keeps sending on the connection it
//!   chose first (so its records stay in order) and reads both. `TCP_NODELAY`, non-blocking,
//!   vectored writes (`sendmsg`, `MSG_NOSIGNAL`).
//! - **Handshake**: the connecting rank first sends 36 bytes: `TOCSIN01`, the job's 16-byte
//!   secret (drawn by rank 0 and published through PMI at start-up), its rank, the job size
//!   and its pid (u32 little-endian; the pid only for messages). Anything else is closed and logged; nothing of it reaches the
//!   core.
//! - **Framing**: each record is `[u32 LE body length][body]`, the body being what the shm
//!   rings carry (`wire` header and payload), at most [`MAX_RECORD`] bytes. A length of 0 is
//!   `BYE`: the sender finished cleanly, nothing follows. End of stream without `BYE`, or a
//!   reset, means the peer died.
//! - **Flow control**: a record the socket does not take whole is kept (the rest of its bytes
//!   in the connection's output buffer, sent before anything else); a full socket makes the
//!   push fail, and the core queues the record. Nothing is dropped. `EINTR` retries.
//! - **Faults**: a connection that ends without `BYE` or is reset fails the peer at once; a
//!   peer whose host vanishes silently is failed after about [`HOST_TIMEOUT`] (keepalive
//!   probes every second once idle, and `TCP_USER_TIMEOUT` for unacknowledged data, both
//!   raised by the kernel: no thread of ours polls).
//! - **Interrupts**: in `signal` mode each socket raises the rank's real-time signal on its
//!   registered thread when data arrives (`F_SETSIG`, `F_SETOWN_EX(F_OWNER_TID)`,
//!   `O_ASYNC`): the kernel plays the interrupting NIC. Each signal is a hint (they are per
//!   segment and coalesce): the handler drains every ready socket. Sleeping ranks wait in
//!   `epoll_wait` over every socket and their doorbell socket.
//! - **Handler context**: reads, writes, accepting and handshakes run in handlers (the
//!   connection table and the handshake queue have room reserved at start-up, receive and
//!   output buffers are anonymous mappings made with `mmap`, never `malloc`); connecting
//!   (a PMI request) and logging a rejected connection need an ordinary pass.

use std::io::IoSlice;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::protocol::{Core, Taken};
use crate::sys::{self, Mapping};
use crate::wire::{Header, Kind, FULL_HDR_LEN};
use crate::Rank;

/// Largest record body on a connection, bytes: a 1 MiB eager message or chunk plus its
/// header.
pub(crate) const MAX_RECORD: usize = (1 << 20) + 64;
/// Payload of each DATA record of a rendezvous over TCP, bytes: large, since the receiver
/// reads each payload in place (one header read per chunk), small enough that the tail a
/// full socket leaves to copy stays small.
pub(crate) const CHUNK: usize = 256 << 10;
/// Ordinary progress passes between two tries of the listener.
const ACCEPT_EVERY: u32 = 64;
/// Largest `SO_RCVLOWAT` set while a payload is read in place, bytes.
const LOWAT: usize = 64 << 10;
/// Bytes read ahead into a connection's buffer at a time (many small records per read;
/// little of a large payload copied before it is read in place).
const READ_AHEAD: usize = 64 << 10;
/// Handshake length, bytes.
const HELLO: usize = 36;
const MAGIC: &[u8; 8] = b"TOCSIN01";
/// A peer whose host stops answering (no FIN, no reset: host down, link cut) is declared
/// dead after about this long (keepalive probes every second, `TCP_USER_TIMEOUT`).
pub(crate) const HOST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a finishing rank waits for its TCP peers to take its last bytes.
const LINGER: Duration = Duration::from_secs(10);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// State of a peer seen through TCP, shared with the engine's liveness checks.
pub(crate) const ALIVE: u8 = 0;
/// The peer sent `BYE`: finished cleanly.
pub(crate) const FINISHED: u8 = 1;
/// The connection ended without `BYE`, or was reset: the peer died.
pub(crate) const DIED: u8 = 2;

/// This rank's TCP endpoint, from start-up: listener, secret, how to find peers.
pub(crate) struct Endpoint {
    listener: TcpListener,
    secret: [u8; 16],
    me: Rank,
    size: u32,
    pmi: Arc<Mutex<Option<Pmi>>>,
    /// Registered thread and signal to raise on data arrival (`signal` mode).
    sig: Option<(i32, i32)>,
    epoll: Option<RawFd>,
}

/// Chooses this node's address: `TOCSIN_TCP_IF` (an interface name, or a CIDR such as
/// `10.0.0.0/8` that one of the interfaces' IPv4 addresses must fall in), else the address
/// the host name resolves to, else loopback.
///
/// # Errors
/// [`Error::Config`] if `TOCSIN_TCP_IF` names no interface with an IPv4 address.
pub(crate) fn local_address(tcp_if: Option<&str>) -> Result<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
    if let Some(spec) = tcp_if {
        let addrs = sys::ipv4_interfaces().map_err(|e| Error::io("getifaddrs", e))?;
        let found = if let Some((net, bits)) = spec.split_once('/') {
            let net: Ipv4Addr = net.parse().map_err(|_| Error::Config {
                name: "TOCSIN_TCP_IF",
                value: spec.into(),
                reason: "expected an interface name or an IPv4 CIDR such as 10.0.0.0/8".into(),
            })?;
            let bits: u32 =
                bits.parse()
                    .ok()
                    .filter(|b| *b <= 32)
                    .ok_or_else(|| Error::Config {
                        name: "TOCSIN_TCP_IF",
                        value: spec.into(),
                        reason: "the prefix length must be 0 to 32".into(),
                    })?;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            addrs
                .iter()
                .find(|(_, a)| u32::from(*a) & mask == u32::from(net) & mask)
                .map(|(_, a)| *a)
        } else {
            addrs.iter().find(|(n, _)| n == spec).map(|(_, a)| *a)
        };
        return found.map(IpAddr::V4).ok_or_else(|| Error::Config {
            name: "TOCSIN_TCP_IF",
            value: spec.into(),
            reason: format!(
                "no interface matches it; interfaces with an IPv4 address: {}",
                addrs
                    .iter()
                    .map(|(n, a)| format!("{n} ({a})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let host = sys::hostname();
    Ok((host.as_str(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.find(|a| a.is_ipv4()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
}

impl Endpoint {
    /// Opens the listener on `ip` (any port) and publishes `tocsin.tcp.<me>`; rank 0 also
    /// draws and publishes the job's secret. Before the bootstrap's barrier.
    ///
    /// # Errors
    /// Socket or PMI errors.
    pub(crate) fn listen(pmi: &mut Pmi, ip: std::net::IpAddr) -> Result<TcpListener> {
        let l = TcpListener::bind((ip, 0))
            .map_err(|e| Error::io(format!("listening for TCP peers on {ip}"), e))?;
        l.set_nonblocking(true)
            .map_err(|e| Error::io("TCP listener", e))?;
        let a = l.local_addr().map_err(|e| Error::io("TCP listener", e))?;
        pmi.put(
            &format!("tocsin.tcp.{}", pmi.rank()),
            &format!("{}@{a}", std::process::id()),
        )?;
        if pmi.rank() == 0 {
            let mut s = [0u8; 16];
            sys::random_bytes(&mut s).map_err(|e| Error::io("getrandom", e))?;
            pmi.put("tocsin.secret", &super::node::hex_bytes(&s))?;
        }
        Ok(l)
    }

    /// The endpoint, after the bootstrap's barrier (reads the secret).
    ///
    /// # Errors
    /// PMI errors, or a malformed secret.
    pub(crate) fn new(
        listener: TcpListener,
        pmi: Arc<Mutex<Option<Pmi>>>,
        me: Rank,
        size: u32,
    ) -> Result<Endpoint> {
        let v = {
            let mut g = pmi
                .lock()
                .map_err(|_| Error::Pmi("PMI lock poisoned".into()))?;
            let p = g
                .as_mut()
                .ok_or_else(|| Error::Pmi("no PMI connection".into()))?;
            p.get("tocsin.secret")?
        };
        let secret = unhex16(&v)
            .ok_or_else(|| Error::Pmi(format!("malformed job secret {v:?} from rank 0")))?;
        Ok(Endpoint {
            listener,
            secret,
            me,
            size,
            pmi,
            sig: None,
            epoll: None,
        })
    }

    /// Sockets raise `signo` on thread `tid` when data arrives (`signal` mode).
    pub(crate) fn raise_signal(&mut self, tid: i32, signo: i32) {
        self.sig = Some((tid, signo));
        let _ = sys::async_signal(self.listener.as_raw_fd(), tid, signo);
    }

    /// Sockets are watched by this epoll set (sleeping ranks wait on it).
    pub(crate) fn watch(&mut self, epfd: RawFd) {
        self.epoll = Some(epfd);
        let _ = sys::epoll_add(epfd, self.listener.as_raw_fd(), false);
    }

    /// The two halves over this endpoint; `ends` is shared with the engine.
    pub(crate) fn halves(self, ends: Arc<[AtomicU8]>, pids: Arc<[AtomicI32]>) -> (TcpTx, TcpRx) {
        let n = self.size as usize;
        let shared = Arc::new(self);
        (
            TcpTx {
                ep: shared.clone(),
                send: (0..n).map(|_| None).collect(),
                conns: Vec::with_capacity(2 * n),
                signals_on: true,
                ends: ends.clone(),
                pids,
            },
            TcpRx {
                ep: shared,
                pending: Vec::with_capacity(16),
                ends,
                since_accept: 0,
            },
        )
    }
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if s.len() != 32 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One established connection.
struct Conn {
    stream: TcpStream,
    peer: Rank,
    /// Received bytes not yet handled: `buf[..filled]`.
    buf: Mapping,
    filled: usize,
    /// Bytes of a record the socket did not take whole: `out[..out_len]`, from `out_off`.
    out: Mapping,
    out_off: usize,
    out_len: usize,
    /// `EPOLLOUT` is in its epoll interest.
    want_out: bool,
    /// A DATA record's payload being received straight into its receive buffer.
    direct: Option<Direct>,
    /// The last record was DATA: read one header only, so that the next chunk's payload
    /// can be read in place.
    after_data: bool,
    /// The socket's `SO_RCVLOWAT`, bytes.
    lowat: usize,
    /// The stream ended (read side).
    closed: bool,
}

impl Conn {
    /// Sets `SO_RCVLOWAT` to `bytes` if it is not that already: while a DATA payload is read
    /// in place, the socket signals (and wakes epoll) only once a useful amount is there
    /// (at most [`LOWAT`], never more than what is still due), not for every segment.
    fn set_lowat(&mut self, bytes: usize) {
        let b = bytes.clamp(1, LOWAT);
        if b != self.lowat && sys::set_rcvlowat(self.stream.as_raw_fd(), b).is_ok() {
            self.lowat = b;
        }
    }

    fn new(stream: TcpStream, peer: Rank, ep: &Endpoint) -> std::io::Result<Conn> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        sys::tcp_liveness(stream.as_raw_fd(), HOST_TIMEOUT)?;
        if let Some((tid, signo)) = ep.sig {
            sys::async_signal(stream.as_raw_fd(), tid, signo)?;
        }
        if let Some(e) = ep.epoll {
            sys::epoll_add(e, stream.as_raw_fd(), false)?;
        }
        Ok(Conn {
            stream,
            peer,
            buf: Mapping::anonymous(MAX_RECORD + 4)?,
            filled: 0,
            out: Mapping::anonymous(MAX_RECORD + 4)?,
            out_off: 0,
            out_len: 0,
            want_out: false,
            direct: None,
            after_data: false,
            lowat: 1,
            closed: false,
        })
    }

    /// Sends what is left in `out`. `Ok(true)` once it is empty.
    fn flush_out(&mut self) -> std::io::Result<bool> {
        while self.out_off < self.out_len {
            // SAFETY: `out` is a live mapping of at least `out_len` bytes.
            let rest = unsafe {
                std::slice::from_raw_parts(
                    self.out.ptr().add(self.out_off),
                    self.out_len - self.out_off,
                )
            };
            match sys::send_vectored(self.stream.as_raw_fd(), &[IoSlice::new(rest)]) {
                Ok(n) => self.out_off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out_off = 0;
        self.out_len = 0;
        Ok(true)
    }

    /// Tells epoll whether we wait for room to write.
    fn set_want_out(&mut self, ep: &Endpoint, on: bool) {
        if self.want_out != on {
            self.want_out = on;
            if let Some(e) = ep.epoll {
                let _ = sys::epoll_mod(e, self.stream.as_raw_fd(), on);
            }
        }
    }
}

/// A DATA payload being received in place.
struct Direct {
    hdr: Header,
    /// Where the payload goes ([`Core::data_target`]).
    dest: *mut u8,
    /// Bytes of it already there.
    written: usize,
}

// SAFETY: `dest` points into a receive buffer lent to the core for the life of the request;
// it is written only under the engine lock (as everything the core touches).
unsafe impl Send for Direct {}

/// The sending half: the connection table.
pub(crate) struct TcpTx {
    ep: Arc<Endpoint>,
    /// Index in `conns` of the connection each peer's records go through.
    send: Vec<Option<usize>>,
    conns: Vec<Conn>,
    /// Sockets raise the signal (`O_ASYNC`): no thread of the rank waits.
    signals_on: bool,
    ends: Arc<[AtomicU8]>,
    /// Each TCP peer's pid once known (from its address or its handshake), for messages.
    pids: Arc<[AtomicI32]>,
}

impl TcpTx {
    /// Connects to `peer` (ordinary context: PMI request, blocking connect).
    fn connect(&mut self, peer: Rank) -> std::io::Result<usize> {
        let addr = {
            let mut g = self
                .ep
                .pmi
                .lock()
                .map_err(|_| std::io::Error::other("PMI lock poisoned"))?;
            let p = g
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no PMI connection"))?;
            p.get(&format!("tocsin.tcp.{peer}"))
                .map_err(|e| std::io::Error::other(e.to_string()))?
        };
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("malformed TCP address {addr:?} of rank {peer} (expected pid@ip:port)"),
            )
        };
        let (pid, sa) = addr.split_once('@').ok_or_else(bad)?;
        let pid: i32 = pid.parse().map_err(|_| bad())?;
        let sa: SocketAddr = sa.parse().map_err(|_| bad())?;
        self.pids[peer as usize].store(pid, Ordering::Relaxed);
        let mut s = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)?;
        let mut hello = [0u8; HELLO];
        hello[..8].copy_from_slice(MAGIC);
        hello[8..24].copy_from_slice(&self.ep.secret);
        hello[24..28].copy_from_slice(&self.ep.me.to_le_bytes());
        hello[28..32].copy_from_slice(&self.ep.size.to_le_bytes());
        hello[32..36].copy_from_slice(&std::process::id().to_le_bytes());
        std::io::Write::write_all(&mut s, &hello)?;
        let c = Conn::new(s, peer, &self.ep)?;
        if !self.signals_on {
            let _ = sys::set_async(c.stream.as_raw_fd(), false);
        }
        self.conns.push(c);
        Ok(self.conns.len() - 1)
    }

    /// The connection records to `peer` go through, opening it in ordinary context.
    fn conn_for(&mut self, peer: Rank, ordinary: bool) -> Option<usize> {
        if let Some(i) = self.send[peer as usize] {
            return Some(i);
        }
        // A connection the peer opened to us serves as well.
        if let Some(i) = self.conns.iter().position(|c| c.peer == peer && !c.closed) {
            self.send[peer as usize] = Some(i);
            return Some(i);
        }
        if !ordinary {
            return None;
        }
        match self.connect(peer) {
            Ok(i) => {
                self.send[peer as usize] = Some(i);
                Some(i)
            }
            Err(e) => {
                crate::diag::warn_once(
                    crate::diag::Warn::Other,
                    format_args!(
                        "cannot connect to rank {peer} over TCP: {e}; treating it as failed"
                    ),
                );
                self.ends[peer as usize].store(DIED, Ordering::Release);
                None
            }
        }
    }

    /// Appends one record toward `peer`; `false` if it must wait (socket full, or no
    /// connection yet in a handler). Async-signal-safe when `!ordinary`.
    pub(crate) fn try_push(
        &mut self,
        peer: Rank,
        hdr: &Header,
        payload: &[u8],
        ordinary: bool,
    ) -> bool {
        if self.ends[peer as usize].load(Ordering::Relaxed) != ALIVE {
            // The core fails requests toward a gone peer at its next liveness check; take
            // the record so that nothing waits on a dead socket.
            return true;
        }
        let Some(i) = self.conn_for(peer, ordinary) else {
            return false;
        };
        let ep = self.ep.clone();
        let c = &mut self.conns[i];
        match c.flush_out() {
            Ok(true) => {}
            Ok(false) => {
                c.set_want_out(&ep, true);
                return false;
            }
            Err(_) => {
                self.ends[peer as usize].store(DIED, Ordering::Release);
                return true;
            }
        }
        let mut h = [0u8; 4 + crate::wire::FULL_HDR_LEN];
        let hl = hdr.encoded_len();
        let body = hl + payload.len();
        if body > MAX_RECORD {
            crate::diag::fatal("tcp: a record larger than the transport's limit");
        }
        h[..4].copy_from_slice(&(body as u32).to_le_bytes());
        hdr.encode(&mut h[4..]);
        let head = &h[..4 + hl];
        let total = head.len() + payload.len();
        let sent = match sys::send_vectored(
            c.stream.as_raw_fd(),
            &[IoSlice::new(head), IoSlice::new(payload)],
        ) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.set_want_out(&ep, true);
                return false;
            }
            Err(_) => {
                self.ends[peer as usize].store(DIED, Ordering::Release);
                return true;
            }
        };
        if sent < total {
            // Keep the rest: it must go before any other record on this stream.
            let mut k = 0;
            for part in [head, payload] {
                for &b in part {
                    if k >= sent {
                        // SAFETY: `out` holds MAX_RECORD + 4 ≥ total bytes.
                        unsafe { *c.out.ptr().add(k - sent) = b };
                    }
                    k += 1;
                }
            }
            c.out_off = 0;
            c.out_len = total - sent;
            c.set_want_out(&ep, true);
        } else if c.want_out {
            c.set_want_out(&ep, false);
        }
        true
    }

    /// Sets or clears `O_ASYNC` on every socket (signal set-up only): while a thread of the
    /// rank waits, it reads the sockets itself and signals would only slow it down.
    pub(crate) fn socket_signals(&mut self, on: bool) {
        if self.ep.sig.is_none() || self.signals_on == on {
            return;
        }
        self.signals_on = on;
        let _ = sys::set_async(self.ep.listener.as_raw_fd(), on);
        for c in &self.conns {
            if !c.closed {
                let _ = sys::set_async(c.stream.as_raw_fd(), on);
            }
        }
    }

    /// Sends what partial writes left in output buffers (every pass: the record was
    /// accepted, its tail must not wait for the next record to that peer).
    /// Async-signal-safe.
    fn flush_pending(&mut self) {
        let ep = self.ep.clone();
        for c in &mut self.conns {
            if c.out_len > c.out_off {
                match c.flush_out() {
                    Ok(true) => c.set_want_out(&ep, false),
                    Ok(false) => c.set_want_out(&ep, true),
                    Err(_) => {
                        c.closed = true;
                        self.ends[c.peer as usize].store(DIED, Ordering::Release);
                    }
                }
            }
        }
    }

    /// This rank finished: sends what is left and `BYE` on every connection, shuts their
    /// write side, then waits (at most [`LINGER`]) until the peers' kernels have acknowledged
    /// every byte (`SIOCOUTQ` is 0), reading and dropping whatever still arrives. Closing a
    /// socket with unread input makes the kernel reset the connection, which discards
    /// what is still in its send queue: without this, a peer whose receive buffer was full
    /// would lose our last records and see us die instead of finish.
    pub(crate) fn bye(&mut self) {
        let t0 = std::time::Instant::now();
        let mut bye_sent = vec![false; self.conns.len()];
        let mut scratch = [0u8; 4096];
        loop {
            let mut all = true;
            for (c, sent) in self.conns.iter_mut().zip(bye_sent.iter_mut()) {
                if c.closed && *sent {
                    continue;
                }
                // Drop input: we will read nothing more, and unread input means a reset.
                while let Ok(k) = sys::recv(c.stream.as_raw_fd(), &mut scratch) {
                    if k == 0 {
                        break;
                    }
                }
                if !*sent {
                    match c.flush_out() {
                        Ok(true) => {
                            c.out_len = 4;
                            c.out_off = 0;
                            // SAFETY: `out` holds at least 4 bytes.
                            unsafe { std::ptr::write_bytes(c.out.ptr(), 0, 4) };
                            if c.flush_out().is_ok_and(|done| done) {
                                let _ = c.stream.shutdown(std::net::Shutdown::Write);
                                *sent = true;
                            } else {
                                all = false;
                                continue;
                            }
                        }
                        Ok(false) => {
                            all = false;
                            continue;
                        }
                        Err(_) => {
                            *sent = true;
                            c.closed = true;
                            continue;
                        }
                    }
                }
                if sys::unsent_bytes(c.stream.as_raw_fd()).unwrap_or(0) > 0 {
                    all = false;
                }
            }
            if all {
                return;
            }
            if t0.elapsed() > LINGER {
                crate::diag::warn_once(
                    crate::diag::Warn::Other,
                    format_args!(
                        "finishing: a TCP peer has not read this rank's last records within {} s \
                         (it computes without calling tocsin, its receive buffer full): they may be lost",
                        LINGER.as_secs()
                    ),
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A connection accepted, its handshake not yet read.
struct Pending {
    stream: TcpStream,
    hello: [u8; HELLO],
    got: usize,
}

/// The receiving half: accepts connections, reads records.
pub(crate) struct TcpRx {
    ep: Arc<Endpoint>,
    pending: Vec<Pending>,
    /// What became of each peer (shared with the sending half and the engine).
    ends: Arc<[AtomicU8]>,
    /// Ordinary passes since the listener was last tried.
    since_accept: u32,
}

impl TcpRx {
    /// Accepts new connections and reads their handshakes. In a handler (`!ordinary`) it
    /// takes only what fits the room reserved at start-up (no allocation: the receive
    /// buffers are `mmap`ed), and leaves rejections (which log) to an ordinary pass.
    fn accept(&mut self, tx: &mut TcpTx, ordinary: bool) {
        loop {
            if !ordinary && self.pending.len() == self.pending.capacity() {
                break;
            }
            let Ok((s, _)) = self.ep.listener.accept() else {
                break;
            };
            {
                let _ = s.set_nonblocking(true);
                self.pending.push(Pending {
                    stream: s,
                    hello: [0; HELLO],
                    got: 0,
                });
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            // (A complete handshake kept by a handler is not read again: a 0-byte read
            // would look like the end of the stream.)
            let r = if p.got < HELLO {
                sys::recv(p.stream.as_raw_fd(), &mut p.hello[p.got..])
            } else {
                Err(std::io::ErrorKind::WouldBlock.into())
            };
            match r {
                Ok(0) => {
                    self.pending.swap_remove(i);
                    continue;
                }
                Ok(n) => p.got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.pending.swap_remove(i);
                    continue;
                }
            }
            if p.got < HELLO {
                i += 1;
                continue;
            }
            let rank = u32::from_le_bytes([p.hello[24], p.hello[25], p.hello[26], p.hello[27]]);
            let size = u32::from_le_bytes([p.hello[28], p.hello[29], p.hello[30], p.hello[31]]);
            let valid = &p.hello[..8] == MAGIC
                && p.hello[8..24] == self.ep.secret
                && size == self.ep.size
                && rank < size
                && rank != self.ep.me;
            if !ordinary && (!valid || tx.conns.len() == tx.conns.capacity()) {
                // Logging a rejection, or growing the table, allocates: an ordinary pass
                // does it.
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            if !valid {
                let from = p
                    .stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                crate::diag::warn_once(
                    crate::diag::Warn::Malformed,
                    format_args!(
                        "closed a TCP connection from {from}: it did not present this job's secret \
                         (not a rank of this job)"
                    ),
                );
                continue;
            }
            let pid = u32::from_le_bytes([p.hello[32], p.hello[33], p.hello[34], p.hello[35]]);
            tx.pids[rank as usize].store(pid as i32, Ordering::Relaxed);
            match Conn::new(p.stream, rank, &self.ep) {
                Ok(c) => {
                    if !tx.signals_on {
                        let _ = sys::set_async(c.stream.as_raw_fd(), false);
                    }
                    tx.conns.push(c)
                }
                Err(e) if ordinary => crate::diag::warn_once(
                    crate::diag::Warn::Other,
                    format_args!("cannot set up the TCP connection from rank {rank}: {e}"),
                ),
                Err(_) => {}
            }
        }
    }

    /// Reads every connection (up to `batch` records each) into the core. Async-signal-safe
    /// when `!ordinary` (reads, accepting and handshakes only). Returns (some record
    /// handled, some connection still holds records, a handler left a record it could not
    /// take).
    pub(crate) fn poll(
        &mut self,
        core: &mut Core,
        tx: &mut super::Tx,
        ordinary: bool,
        batch: usize,
        bad: &dyn Fn(Rank),
    ) -> (bool, bool, bool) {
        let mut out = Served::default();
        let Some(ttx) = tx.tcp.as_mut() else {
            return (false, false, false);
        };
        ttx.flush_pending();
        // The listener is tried in every handler (the signal may be its) and every
        // ACCEPT_EVERY ordinary passes, not on each: a connection waits in the kernel's
        // backlog meanwhile, its data in its socket (one system call saved per pass).
        self.since_accept += 1;
        if !ordinary || self.since_accept >= ACCEPT_EVERY || !self.pending.is_empty() {
            self.since_accept = 0;
            self.accept(ttx, ordinary);
        }
        let n = ttx.conns.len();
        for i in 0..n {
            serve(i, core, tx, &self.ends, batch, bad, &mut out, !ordinary);
        }
        (out.did, out.unread, out.stalled)
    }
}

/// What serving the connections found.
#[derive(Default)]
struct Served {
    did: bool,
    unread: bool,
    stalled: bool,
}

/// Why handling a connection's buffered records stopped early.
enum Stop {
    Bye,
    Malformed,
    Batch,
    Left,
}

/// The connection `i` of `tx`'s TCP half (present: checked by the caller).
fn conn(tx: &mut super::Tx, i: usize) -> &mut Conn {
    match tx.tcp.as_mut() {
        Some(t) => &mut t.conns[i],
        None => crate::diag::fatal("tcp: a connection of a missing transport"),
    }
}

/// Serves connection `i`: hands complete records to the core, receives a DATA record's
/// payload straight into its receive buffer ([`Core::data_target`]), reads more, until the
/// socket is empty or `batch` records were handled. Async-signal-safe.
#[allow(clippy::too_many_arguments)]
fn serve(
    i: usize,
    core: &mut Core,
    tx: &mut super::Tx,
    ends: &[AtomicU8],
    batch: usize,
    bad: &dyn Fn(Rank),
    out: &mut Served,
    handler: bool,
) {
    let c = conn(tx, i);
    let peer = c.peer;
    if c.closed || core.is_dead(peer) {
        return;
    }
    let mut records = 0usize;
    let mut drained = false;
    let mut eof = false;
    let mut err = false;
    let stop = loop {
        // 1. Records complete in the buffer; a DATA record whose payload is still coming
        // switches to direct reception.
        let mut off = 0;
        let mut stop = None;
        loop {
            let c = conn(tx, i);
            if c.direct.is_some() {
                break;
            }
            let avail = c.filled - off;
            if avail < 4 {
                break;
            }
            // SAFETY: `off + 4 ≤ filled` bytes of the live mapping.
            let len = unsafe {
                let p = c.buf.ptr().add(off);
                u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) as usize
            };
            if len == 0 {
                off += 4;
                stop = Some(Stop::Bye);
                break;
            }
            if len > MAX_RECORD {
                stop = Some(Stop::Malformed);
                break;
            }
            if avail - 4 >= len {
                if records >= batch {
                    stop = Some(Stop::Batch);
                    break;
                }
                // SAFETY: `off + 4 + len ≤ filled` bytes of the live mapping, which
                // `on_record` does not touch (it sees only the sending halves).
                let rec = unsafe { std::slice::from_raw_parts(c.buf.ptr().add(off + 4), len) };
                match core.on_record(tx, peer, rec) {
                    Ok(Taken::Consumed) => {
                        off += 4 + len;
                        records += 1;
                        out.did = true;
                        if handler {
                            crate::stats::bump(crate::stats::Counter::HandlerRecords);
                        }
                        conn(tx, i).after_data = false;
                    }
                    Ok(Taken::LeftInRing) => {
                        stop = Some(Stop::Left);
                        break;
                    }
                    Err(_) => {
                        stop = Some(Stop::Malformed);
                        break;
                    }
                }
                continue;
            }
            // An incomplete record. A DATA header that is complete: its payload goes
            // straight to the receive buffer.
            if avail - 4 >= FULL_HDR_LEN {
                // SAFETY: `off + 4 + FULL_HDR_LEN ≤ filled` bytes of the live mapping.
                let head =
                    unsafe { std::slice::from_raw_parts(c.buf.ptr().add(off + 4), avail - 4) };
                if head[0] == Kind::Data as u8 {
                    let h = match Header::decode_header(head) {
                        Ok(h) if h.len as usize + FULL_HDR_LEN == len => h,
                        _ => {
                            stop = Some(Stop::Malformed);
                            break;
                        }
                    };
                    let dest = match core.data_target(peer, &h) {
                        Ok(d) => d,
                        Err(_) => {
                            stop = Some(Stop::Malformed);
                            break;
                        }
                    };
                    let have = avail - 4 - FULL_HDR_LEN;
                    let c = conn(tx, i);
                    // SAFETY: `have < h.len` bytes of the buffer to the target, which holds
                    // `h.len` bytes ([`Core::data_target`]); distinct memory.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            c.buf.ptr().add(off + 4 + FULL_HDR_LEN),
                            dest,
                            have,
                        )
                    };
                    c.direct = Some(Direct {
                        hdr: h,
                        dest,
                        written: have,
                    });
                    c.set_lowat(h.len as usize - have);
                    off = c.filled;
                }
            }
            break;
        }
        let c = conn(tx, i);
        if off > 0 {
            // SAFETY: both ranges lie in the live mapping; `copy` allows overlap.
            unsafe { std::ptr::copy(c.buf.ptr().add(off), c.buf.ptr(), c.filled - off) };
            c.filled -= off;
        }
        if stop.is_some() {
            break stop;
        }
        // 2. Read: the rest of a direct payload, else into the buffer (one header only
        // right after a DATA record, so that the next chunk's payload is read in place).
        // A read that returned less than asked emptied the socket: no second read only to
        // hear EAGAIN (one system call saved per message).
        if drained {
            break None;
        }
        let fd = c.stream.as_raw_fd();
        let asked;
        let r = if let Some(d) = &c.direct {
            // SAFETY: the target holds `hdr.len` bytes and stays valid until
            // `data_written` (the peer is alive: checked above and by the caller).
            let dst = unsafe {
                std::slice::from_raw_parts_mut(
                    d.dest.add(d.written),
                    d.hdr.len as usize - d.written,
                )
            };
            asked = dst.len();
            sys::recv(fd, dst)
        } else {
            let want = if c.after_data && c.filled < 4 + FULL_HDR_LEN {
                4 + FULL_HDR_LEN - c.filled
            } else {
                c.after_data = false;
                READ_AHEAD
            };
            let room = (MAX_RECORD + 4 - c.filled).min(want);
            if room == 0 {
                break None;
            }
            // SAFETY: `filled + room ≤ MAX_RECORD + 4`, the live mapping's length.
            let dst = unsafe { std::slice::from_raw_parts_mut(c.buf.ptr().add(c.filled), room) };
            asked = room;
            sys::recv(fd, dst)
        };
        match r {
            Ok(0) => {
                eof = true;
                break None;
            }
            Ok(k) => {
                drained = k < asked;
                if let Some(d) = &mut c.direct {
                    d.written += k;
                    let left = d.hdr.len as usize - d.written;
                    if left > 0 {
                        c.set_lowat(left);
                    } else {
                        let h = d.hdr;
                        c.direct = None;
                        c.after_data = true;
                        c.set_lowat(1);
                        core.data_written(peer, &h);
                        records += 1;
                        out.did = true;
                        if handler {
                            crate::stats::bump(crate::stats::Counter::HandlerRecords);
                        }
                    }
                } else {
                    c.filled += k;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break None,
            Err(_) => {
                err = true;
                break None;
            }
        }
    };
    let c = conn(tx, i);
    match stop {
        Some(Stop::Left) => out.stalled = true,
        Some(Stop::Batch) => out.unread = true,
        Some(Stop::Malformed) => {
            c.closed = true;
            c.direct = None;
            bad(peer);
            return;
        }
        Some(Stop::Bye) => {
            c.closed = true;
            let _ = ends[peer as usize].compare_exchange(
                ALIVE,
                FINISHED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return;
        }
        None => {}
    }
    if eof || err {
        if c.filled >= 4 && !err {
            // Records remain in the buffer: the next pass handles them, then the end.
            out.unread = true;
            return;
        }
        c.closed = true;
        c.direct = None;
        let _ =
            ends[peer as usize].compare_exchange(ALIVE, DIED, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl TcpRx {
    /// Reads and handles everything `peer` sent that can be read now, without the batch
    /// limit (ordinary context). `Err` if something of it is malformed.
    pub(crate) fn drain(
        &mut self,
        core: &mut Core,
        tx: &mut super::Tx,
        peer: Rank,
    ) -> std::result::Result<(), ()> {
        let bad = std::cell::Cell::new(false);
        let Some(t) = tx.tcp.as_ref() else {
            return Ok(());
        };
        let mine: Vec<usize> = (0..t.conns.len())
            .filter(|&i| t.conns[i].peer == peer)
            .collect();
        for i in mine {
            let mut out = Served::default();
            serve(
                i,
                core,
                tx,
                &self.ends,
                usize::MAX,
                &|_| bad.set(true),
                &mut out,
                false,
            );
        }
        if bad.get() {
            Err(())
        } else {
            Ok(())
        }
    }
}
