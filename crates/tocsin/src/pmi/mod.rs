//! PMI-1 client: how a rank learns its rank, the job size and its peers' contact data from
//! the launcher (`tocsin run`, MPICH's `mpiexec.hydra`, or any PMI-1 "simple" server).
//!
//! Owns the connection to the launcher (the socket named by `PMI_FD`, or a TCP connection to
//! `PMI_PORT`) and the PMI-1 wire dialogue on it ([`line`](mod@line) holds the sans-I/O grammar). It
//! must not touch the communicator, shared memory or signals: the progress engine calls
//! [`Pmi`] during start-up and tear-down only.
//!
//! # Protocol
//! One request line, one response line (as MPICH's `simple_pmi`):
//!
//! | request | response |
//! |---|---|
//! | `cmd=init pmi_version=1 pmi_subversion=1` | `cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0` |
//! | `cmd=get_maxes` | `cmd=maxes kvsname_max=… keylen_max=… vallen_max=…` |
//! | `cmd=get_my_kvsname` | `cmd=my_kvsname kvsname=…` |
//! | `cmd=put kvsname=… key=… value=…` | `cmd=put_result rc=0` |
//! | `cmd=barrier_in` | `cmd=barrier_out` |
//! | `cmd=get kvsname=… key=…` | `cmd=get_result rc=0 value=…` |
//! | `cmd=get_universe_size` | `cmd=universe_size size=…` |
//! | `cmd=get_appnum` | `cmd=appnum appnum=…` |
//! | `cmd=finalize` | `cmd=finalize_ack` |
//! | `cmd=abort exitcode=…` | (none: the launcher ends the job) |
//!
//! With `PMI_PORT` and `PMI_ID` (hydra's `-pmi-port`), the client first sends
//! `cmd=initack pmiid=<id>` and reads `cmd=initack`, `cmd=set size=…`, `cmd=set rank=…`,
//! `cmd=set debug=…`.
//!
//! Keys and values travel as single tokens: they must not contain whitespace, `=` or control
//! characters (callers hex-encode binary data), and must fit the launcher's maxima
//! ([`Pmi::maxes`]).
//!
//! # Launchers and their quirks
//! - `tocsin run`: the reference; announces `vallen_max=4096` and reads whole lines.
//! - MPICH's `mpiexec.hydra` (4.0): answers `msg=success`, `appnum=0`; a missing key is
//!   `cmd=get_result rc=-1 msg=key_…_not_found value=unknown`.
//! - Slurm's `srun --mpi=pmi2` (22.05, `src/plugins/mpi/pmi2/`) speaks PMI-1 on `PMI_FD`
//!   once the client says `pmi_version=1`:
//!   - it reads the first request (`init`) with a single `read` of at most 64 bytes and
//!     drops whatever else came with it, so `init` is sent alone (40 bytes) and nothing else
//!     is sent before `response_to_init` arrives (true of every request here: one request,
//!     then its reply);
//!   - it reads every later request with a single `read` of at most 1024 bytes, not up to
//!     the newline (`pmi1.c`, "TODO: read until newline"): a longer line would be cut in
//!     two, so [`Pmi::put`] refuses a request line over [`MAX_REQUEST`] bytes when the
//!     launcher announced `vallen_max` ≤ 1024 (Slurm and hydra announce 1024), and each
//!     request goes out in one `send`;
//!   - `appnum=-1`; no `msg=` fields; a missing key is `cmd=get_result rc=1` with neither
//!     `msg` nor `value` ([`Pmi::try_get`] treats any non-zero `rc` of a well-formed
//!     `get_result` as "absent");
//!   - it pre-puts `PMI_process_mapping` in the KVS ([`Pmi::process_mapping`]).

pub mod line;
pub mod mapping;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Longest response line accepted from the launcher, bytes: 64 KiB. Longer lines are a
/// protocol error reported as [`Error::Pmi`], never buffered further (hydra's own limit is
/// 1024 bytes for PMI-1, `tocsin run`'s values are at most 4096).
pub const MAX_LINE: usize = 64 * 1024;

/// Longest request line (newline included) sent to a launcher that announced
/// `vallen_max` ≤ 1024, bytes: Slurm reads each PMI-1 request with one `read` of at most 1024
/// bytes (MPICH's `simple_pmi` has the same line limit, `PMIU_MAXLINE`).
pub const MAX_REQUEST: usize = 1024;

/// The `PMI_FD` descriptor a [`Pmi::from_env`] has taken ownership of (-1: none yet), so
/// that a second call cannot close it twice and can tell why it is gone.
static CLAIMED_FD: AtomicI32 = AtomicI32::new(-1);

/// The error of the first failed initialization after `PMI_FD` was claimed: the launcher
/// connection is closed with it, so a retry reports this instead of a vanished descriptor.
static FIRST_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Records `e`, the error of a failed initialization, if it happened after the `PMI_FD`
/// connection was claimed (and consumed): a later attempt then reports it. Keeps the first.
pub(crate) fn note_init_failure(e: &Error) {
    if matches!(e, Error::AlreadyInitialized) || CLAIMED_FD.load(Ordering::SeqCst) < 0 {
        return;
    }
    if let Ok(mut f) = FIRST_FAILURE.lock() {
        f.get_or_insert_with(|| e.to_string());
    }
}

/// Size limits announced by the launcher (`cmd=maxes`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maxes {
    /// Longest KVS name.
    pub kvsname_max: usize,
    /// Longest key.
    pub keylen_max: usize,
    /// Longest value.
    pub vallen_max: usize,
}

/// A PMI-1 connection to the launcher of this job.
///
/// Blocking: every call sends one request and waits for its response (`barrier` waits for
/// every rank). Not thread-safe by itself (`&mut self`); one per process.
#[derive(Debug)]
pub struct Pmi {
    fd: OwnedFd,
    rbuf: Vec<u8>,
    rank: u32,
    size: u32,
    kvsname: String,
    maxes: Maxes,
}

impl Pmi {
    /// Connects to the launcher named by the environment and performs the PMI-1 handshake
    /// (`init`, `get_maxes`, `get_my_kvsname`).
    ///
    /// - `PMI_FD=<fd>` (with `PMI_RANK`, `PMI_SIZE`): an inherited, connected socket, as
    ///   `tocsin run` and `mpiexec.hydra` provide. The descriptor is taken over (marked
    ///   close-on-exec, closed when the `Pmi` is dropped); only the first call in a process
    ///   may claim it.
    /// - else `PMI_PORT=<host>:<port>` (with `PMI_ID`, or `PMI_RANK` and `PMI_SIZE`): a TCP
    ///   connection, as `mpiexec.hydra -pmi-port` provides.
    ///
    /// Returns `Ok(None)` when neither is set: the process runs alone (rank 0 of 1).
    ///
    /// # Errors
    /// [`Error::Pmi`] if a variable is malformed, `PMI_FD` is not an open socket or was already
    /// claimed (by an earlier initialization in this process: the error then quotes why that
    /// one failed), `PMI_RANK` is not below `PMI_SIZE`, or the launcher answers the handshake
    /// wrongly; [`Error::Io`] if the connection fails.
    pub fn from_env() -> Result<Option<Pmi>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) reading variables through `var` (testable).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Pmi>> {
        if let Some(fd_text) = var("PMI_FD") {
            let fd: RawFd = fd_text
                .trim()
                .parse()
                .ok()
                .filter(|fd| *fd >= 0)
                .ok_or_else(|| {
                    Error::Pmi(format!(
                        "PMI_FD={fd_text:?} is not a file descriptor number"
                    ))
                })?;
            let rank = env_u32(&var, "PMI_RANK", true)?.unwrap_or(0);
            let size = env_u32(&var, "PMI_SIZE", true)?.unwrap_or(1);
            let fd = claim_inherited_fd(fd)?;
            return Self::from_socket(fd, rank, size)
                .inspect_err(note_init_failure)
                .map(Some);
        }
        if let Some(port) = var("PMI_PORT") {
            let (host, port_no) = port
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    Error::Pmi(format!(
                        "PMI_PORT={port:?} is not of the form <host>:<port>"
                    ))
                })?;
            let stream = std::net::TcpStream::connect((host, port_no)).map_err(|e| {
                Error::io(
                    format!("PMI: connecting to the launcher at PMI_PORT={port}"),
                    e,
                )
            })?;
            // Latency of small request/response lines matters more than throughput.
            let _ = stream.set_nodelay(true);
            let fd = OwnedFd::from(stream);
            let id = env_u32(&var, "PMI_ID", false)?;
            return match id {
                Some(id) => Self::from_port_with_id(fd, id).map(Some),
                None => {
                    let rank = env_u32(&var, "PMI_RANK", true)?.unwrap_or(0);
                    let size = env_u32(&var, "PMI_SIZE", true)?.unwrap_or(1);
                    Self::from_socket(fd, rank, size).map(Some)
                }
            };
        }
        Ok(None)
    }

    /// Runs the PMI-1 handshake over `sock`, an already connected stream socket to a PMI-1
    /// server, for the rank `rank` of a job of `size` ranks. Used by
    /// [`from_env`](Self::from_env); public for tests and embedders that set up the
    /// connection themselves.
    ///
    /// # Errors
    /// [`Error::Pmi`] if `rank >= size` or the server answers `init`, `get_maxes` or
    /// `get_my_kvsname` wrongly; [`Error::Io`] if the socket fails.
    pub fn from_socket(sock: OwnedFd, rank: u32, size: u32) -> Result<Pmi> {
        if size == 0 || rank >= size {
            return Err(Error::Pmi(format!(
                "rank {rank} is not valid in a job of {size} ranks (PMI_RANK must be below PMI_SIZE)"
            )));
        }
        let mut pmi = Pmi {
            fd: sock,
            rbuf: Vec::new(),
            rank,
            size,
            kvsname: String::new(),
            maxes: Maxes {
                kvsname_max: 256,
                keylen_max: 256,
                vallen_max: 256,
            },
        };
        pmi.handshake()?;
        Ok(pmi)
    }

    /// `PMI_PORT` + `PMI_ID`: learn rank and size from the server, then the usual handshake.
    fn from_port_with_id(fd: OwnedFd, id: u32) -> Result<Pmi> {
        let mut pmi = Pmi {
            fd,
            rbuf: Vec::new(),
            rank: 0,
            size: 1,
            kvsname: String::new(),
            maxes: Maxes {
                kvsname_max: 256,
                keylen_max: 256,
                vallen_max: 256,
            },
        };
        pmi.send(
            &line::format("initack", &[("pmiid", &id.to_string())]),
            "initack",
        )?;
        let text = pmi.recv_line("initack")?;
        let l = parse_reply(&text, "initack", "initack")?;
        check_rc(&l, &text, "initack")?;
        let (mut size, mut rank) = (None, None);
        for _ in 0..3 {
            let text = pmi.recv_line("initack")?;
            let l = parse_reply(&text, "initack", "set")?;
            if l.get("size").is_some() {
                size = Some(l.require_int::<u32>("size", &text)?);
            } else if l.get("rank").is_some() {
                rank = Some(l.require_int::<u32>("rank", &text)?);
            } else if l.get("debug").is_none() {
                return Err(Error::Pmi(format!(
                    "initack: expected cmd=set size=|rank=|debug=, got {:?}",
                    text.trim_end()
                )));
            }
        }
        let (Some(size), Some(rank)) = (size, rank) else {
            return Err(Error::Pmi(format!(
                "initack for PMI_ID={id}: the launcher did not send both size and rank"
            )));
        };
        if size == 0 || rank >= size {
            return Err(Error::Pmi(format!(
                "initack for PMI_ID={id}: rank {rank} is not valid in a job of {size} ranks"
            )));
        }
        pmi.rank = rank;
        pmi.size = size;
        pmi.handshake()?;
        Ok(pmi)
    }

    /// `init`, `get_maxes`, `get_my_kvsname`.
    fn handshake(&mut self) -> Result<()> {
        let text = self.request(
            &line::format("init", &[("pmi_version", "1"), ("pmi_subversion", "1")]),
            "init",
            "response_to_init",
        )?;
        let l = line::parse(&text)?;
        let version: u32 = l.require_int("pmi_version", &text)?;
        if version != 1 {
            return Err(Error::Pmi(format!(
                "init: the launcher speaks PMI version {version}, this client only PMI-1: {:?}",
                text.trim_end()
            )));
        }

        let text = self.request(&line::format("get_maxes", &[]), "get_maxes", "maxes")?;
        let l = line::parse(&text)?;
        self.maxes = Maxes {
            kvsname_max: l.require_int("kvsname_max", &text)?,
            keylen_max: l.require_int("keylen_max", &text)?,
            vallen_max: l.require_int("vallen_max", &text)?,
        };

        let text = self.request(
            &line::format("get_my_kvsname", &[]),
            "get_my_kvsname",
            "my_kvsname",
        )?;
        let l = line::parse(&text)?;
        let name = l.require("kvsname", &text)?;
        line::check_token("KVS name", name, self.maxes.kvsname_max)?;
        self.kvsname = name.to_owned();
        Ok(())
    }

    /// This process's rank, `0..size()`.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Number of ranks in the job (≥ 1).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Name of the job's key-value space, as given by the launcher.
    pub fn kvsname(&self) -> &str {
        &self.kvsname
    }

    /// The launcher's size limits for names, keys and values (bytes).
    pub fn maxes(&self) -> Maxes {
        self.maxes
    }

    /// Publishes `key = value` in the job's key-value space. It becomes visible to the other
    /// ranks after the next [`barrier`](Self::barrier).
    ///
    /// `key` and `value` must be non-empty and contain no whitespace, `=` or control
    /// characters, and fit [`maxes`](Self::maxes); hex-encode anything else.
    ///
    /// # Errors
    /// [`Error::Pmi`] if `key` or `value` breaks these rules (nothing is sent) or the launcher
    /// refuses the put; [`Error::Io`] if the connection fails.
    pub fn put(&mut self, key: &str, value: &str) -> Result<()> {
        line::check_token("key", key, self.maxes.keylen_max)?;
        line::check_token("value", value, self.maxes.vallen_max)?;
        let what = format!("put of key {key:?}");
        let kvs = self.kvsname.clone();
        let msg = line::format("put", &[("kvsname", &kvs), ("key", key), ("value", value)]);
        if self.maxes.vallen_max <= MAX_REQUEST && msg.len() > MAX_REQUEST {
            return Err(Error::Pmi(format!(
                "{what}: the request line would be {} bytes ({}-byte value), more than the \
                 {MAX_REQUEST} a PMI-1 launcher announcing vallen_max={} reads at once \
                 (Slurm would cut it); shorten the value or split it over several keys",
                msg.len(),
                value.len(),
                self.maxes.vallen_max
            )));
        }
        self.request(&msg, &what, "put_result")?;
        Ok(())
    }

    /// Commits this rank's puts (a no-op on the PMI-1 wire) and waits until every rank of the
    /// job has entered the barrier. Afterwards every rank's earlier puts are visible to
    /// [`get`](Self::get).
    ///
    /// # Errors
    /// [`Error::Pmi`] on a wrong answer; [`Error::Io`] if the connection fails (e.g. the
    /// launcher ended the job).
    pub fn barrier(&mut self) -> Result<()> {
        self.request(&line::format("barrier_in", &[]), "barrier", "barrier_out")?;
        Ok(())
    }

    /// Reads the value of `key` from the job's key-value space.
    ///
    /// # Errors
    /// [`Error::Pmi`] naming the key if it is absent (not put, or put by a rank that has not
    /// yet passed a barrier with this one), invalid, or the answer is malformed;
    /// [`Error::Io`] if the connection fails.
    pub fn get(&mut self, key: &str) -> Result<String> {
        match self.get_reply(key)? {
            Ok(v) => Ok(v),
            Err((rc, text)) => Err(Error::Pmi(format!(
                "key {key:?} not found in KVS {:?} (launcher answered rc={rc}: {:?})",
                self.kvsname,
                text.trim_end()
            ))),
        }
    }

    /// Reads the value of `key` if the launcher has it: `Ok(None)` when it answers the `get`
    /// with a non-zero `rc` (hydra: `rc=-1 msg=…not_found`, Slurm: `rc=1` alone), which in
    /// PMI-1 means the key is absent.
    ///
    /// # Errors
    /// [`Error::Pmi`] if `key` is invalid or the answer is malformed; [`Error::Io`] if the
    /// connection fails.
    pub fn try_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.get_reply(key)?.ok())
    }

    /// The node index of every rank (`result[rank]`, nodes numbered from 0 as the launcher
    /// numbers them), from the job attribute `PMI_process_mapping` that hydra, Slurm and
    /// `tocsin run` publish (format: [`mapping`](mod@mapping)). Ranks with the same index
    /// were placed on the same node by the launcher (which may emulate several nodes on one
    /// machine: Slurm's multiple-slurmd mode).
    ///
    /// Returns `Ok(None)` if the launcher does not publish the key or publishes it empty (it
    /// does not know the placement): callers then fall back to comparing host names.
    ///
    /// # Errors
    /// [`Error::Pmi`] naming the value and the accepted format if it is malformed or does not
    /// place every rank; [`Error::Io`] if the connection fails.
    pub fn process_mapping(&mut self) -> Result<Option<Vec<u32>>> {
        match self.try_get("PMI_process_mapping")? {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => mapping::parse(&v, self.size).map(Some),
        }
    }

    /// Sends `get` for `key`: `Ok(Ok(value))`, or `Ok(Err((rc, reply)))` if the launcher
    /// answered a non-zero `rc` (absent key).
    fn get_reply(&mut self, key: &str) -> Result<std::result::Result<String, (i64, String)>> {
        line::check_token("key", key, self.maxes.keylen_max)?;
        let kvs = self.kvsname.clone();
        let msg = line::format("get", &[("kvsname", &kvs), ("key", key)]);
        let what = format!("get of key {key:?}");
        self.send(&msg, &what)?;
        let text = self.recv_line(&what)?;
        let l = parse_reply(&text, &what, "get_result")?;
        match l.rc(&text).map_err(|e| in_reply(&what, e))? {
            Some(0) | None => {}
            Some(rc) => return Ok(Err((rc, text))),
        }
        let value = l.require("value", &text).map_err(|e| in_reply(&what, e))?;
        if value.len() > self.maxes.vallen_max {
            return Err(Error::Pmi(format!(
                "{what}: the launcher's value is {} bytes, more than the vallen_max={} it \
                 announced",
                value.len(),
                self.maxes.vallen_max
            )));
        }
        Ok(Ok(value.to_owned()))
    }

    /// Number of processes the launcher could run in this job (`cmd=get_universe_size`).
    ///
    /// # Errors
    /// [`Error::Pmi`] on a wrong answer; [`Error::Io`] if the connection fails.
    pub fn universe_size(&mut self) -> Result<i64> {
        let text = self.request(
            &line::format("get_universe_size", &[]),
            "get_universe_size",
            "universe_size",
        )?;
        line::parse(&text)?.require_int("size", &text)
    }

    /// Index of this rank's application in an MPMD job (`cmd=get_appnum`; 0 for a plain job).
    ///
    /// # Errors
    /// [`Error::Pmi`] on a wrong answer; [`Error::Io`] if the connection fails.
    pub fn appnum(&mut self) -> Result<i64> {
        let text = self.request(&line::format("get_appnum", &[]), "get_appnum", "appnum")?;
        line::parse(&text)?.require_int("appnum", &text)
    }

    /// Tells the launcher this rank is done with PMI (`cmd=finalize`), waits for the
    /// acknowledgement, and closes the connection.
    ///
    /// # Errors
    /// [`Error::Pmi`] on a wrong answer; [`Error::Io`] if the connection fails.
    pub fn finalize(mut self) -> Result<()> {
        self.request(&line::format("finalize", &[]), "finalize", "finalize_ack")?;
        Ok(())
    }

    /// Asks the launcher to end the whole job with exit code `code`; `msg` is reported by the
    /// launcher (whitespace and `=` in it are replaced by `_` and `:` to fit the wire).
    /// Returns once the request is sent; no answer is awaited (the launcher kills the job,
    /// this process included), so the caller should exit next.
    ///
    /// # Errors
    /// [`Error::Io`] if the request cannot be sent.
    pub fn abort(&mut self, code: i32, msg: &str) -> Result<()> {
        let clean: String = msg
            .chars()
            .take(self.maxes.vallen_max.max(64))
            .map(|c| match c {
                '=' => ':',
                c if c.is_whitespace() || c.is_control() => '_',
                c => c,
            })
            .collect();
        let code = code.to_string();
        let mut fields = vec![("exitcode", code.as_str())];
        if !clean.is_empty() {
            fields.push(("error_msg", clean.as_str()));
        }
        self.send(&line::format("abort", &fields), "abort")
    }

    /// Sends `msg` and reads one reply, which must be `cmd=<expect>` with `rc` absent or 0.
    /// Returns the reply text.
    fn request(&mut self, msg: &str, what: &str, expect: &str) -> Result<String> {
        self.send(msg, what)?;
        let text = self.recv_line(what)?;
        let l = parse_reply(&text, what, expect)?;
        check_rc(&l, &text, what)?;
        Ok(text)
    }

    /// Writes all of `msg` (one or more lines).
    fn send(&mut self, msg: &str, what: &str) -> Result<()> {
        let mut buf = msg.as_bytes();
        while !buf.is_empty() {
            // SAFETY: `self.fd` is an open socket we own; `buf` is a live slice and the length
            // passed is its length. MSG_NOSIGNAL turns a closed peer into EPIPE, not SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(format!("PMI {what}: sending to the launcher"), e));
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    /// The error for a reply line longer than [`MAX_LINE`]; drops what was buffered (the
    /// connection is out of step with the launcher and should not be used any more).
    fn overlong(&mut self, what: &str) -> Error {
        let e = Error::Pmi(format!(
            "{what}: the launcher sent a line longer than {MAX_LINE} bytes (starting {:?})",
            String::from_utf8_lossy(&self.rbuf[..self.rbuf.len().min(64)])
        ));
        self.rbuf = Vec::new();
        e
    }

    /// Reads one line (up to and including `\n`, which is stripped). An end of file before
    /// the `\n` is an [`Error::Pmi`] (the launcher closed the connection), so a reader never
    /// waits on a closed connection; at most [`MAX_LINE`] bytes are buffered.
    fn recv_line(&mut self, what: &str) -> Result<String> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.rbuf[scanned..].iter().position(|b| *b == b'\n') {
                let end = scanned + pos;
                if end > MAX_LINE {
                    return Err(self.overlong(what));
                }
                let rest = self.rbuf.split_off(end + 1);
                let mut bytes = std::mem::replace(&mut self.rbuf, rest);
                bytes.truncate(end);
                return String::from_utf8(bytes).map_err(|e| {
                    Error::Pmi(format!(
                        "{what}: the launcher sent a line that is not UTF-8: {:?}",
                        String::from_utf8_lossy(e.as_bytes())
                    ))
                });
            }
            scanned = self.rbuf.len();
            if self.rbuf.len() > MAX_LINE {
                return Err(self.overlong(what));
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: `self.fd` is an open socket we own; `chunk` is a writable buffer of the
            // length passed.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(
                    format!("PMI {what}: reading the launcher's answer"),
                    e,
                ));
            }
            if n == 0 {
                return Err(Error::Pmi(format!(
                    "{what}: the launcher closed the PMI connection before answering{}",
                    if self.rbuf.is_empty() {
                        String::new()
                    } else {
                        format!(" (partial line {:?})", String::from_utf8_lossy(&self.rbuf))
                    }
                )));
            }
            self.rbuf.extend_from_slice(&chunk[..n as usize]);
        }
    }
}

/// Parses `text` and checks that its command is `expect`.
fn parse_reply<'a>(text: &'a str, what: &str, expect: &str) -> Result<line::Line<'a>> {
    let l = line::parse(text).map_err(|e| Error::Pmi(format!("{what}: {e}")))?;
    if l.cmd != expect {
        return Err(Error::Pmi(format!(
            "{what}: expected cmd={expect} from the launcher, got {:?}",
            text.trim_end()
        )));
    }
    Ok(l)
}

/// Prefixes a PMI error about a reply with the request it answered.
fn in_reply(what: &str, e: Error) -> Error {
    match e {
        Error::Pmi(m) => Error::Pmi(format!("{what}: {m}")),
        e => e,
    }
}

/// Fails if the reply carries a non-zero `rc`.
fn check_rc(l: &line::Line<'_>, text: &str, what: &str) -> Result<()> {
    match l.rc(text).map_err(|e| in_reply(what, e))? {
        Some(0) | None => Ok(()),
        Some(rc) => Err(Error::Pmi(format!(
            "{what}: the launcher answered rc={rc}: {:?}",
            text.trim_end()
        ))),
    }
}

/// Reads an unsigned decimal variable; `Ok(None)` if unset and not `required`.
fn env_u32(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    required: bool,
) -> Result<Option<u32>> {
    match var(name) {
        None if required => Err(Error::Pmi(format!(
            "{name} is not set although a PMI launcher connection (PMI_FD or PMI_PORT) is"
        ))),
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Pmi(format!("{name}={v:?} is not a non-negative integer"))),
    }
}

/// Takes ownership of the inherited descriptor `fd` after checking it is an open socket.
fn claim_inherited_fd(fd: RawFd) -> Result<OwnedFd> {
    if CLAIMED_FD.load(Ordering::SeqCst) == fd {
        let first = FIRST_FAILURE.lock().ok().and_then(|f| f.clone());
        return Err(Error::Pmi(match first {
            Some(why) => format!(
                "PMI_FD={fd}: the launcher connection was used and closed by an earlier \
                 initialization in this process, which failed: {why} (a process can \
                 bootstrap through PMI only once: fix that error and restart the job)"
            ),
            None => format!(
                "PMI_FD={fd} was already claimed by an earlier Pmi::from_env in this process \
                 (a process can bootstrap through PMI only once)"
            ),
        }));
    }
    // SAFETY: fstat only writes into `st`, a properly sized zeroed struct; an invalid `fd`
    // yields EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Error::Pmi(format!(
            "PMI_FD={fd} is not an open file descriptor in this process ({}); was the \
             program started by a launcher that passes it?",
            std::io::Error::last_os_error()
        )));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Error::Pmi(format!(
            "PMI_FD={fd} is open but is not a socket"
        )));
    }
    if let Err(prev) = CLAIMED_FD.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst) {
        return Err(Error::Pmi(format!(
            "PMI_FD={fd}: this process already claimed PMI_FD={prev} through an earlier \
             Pmi::from_env (a process can bootstrap through PMI only once)"
        )));
    }
    // SAFETY: the launcher handed this open socket to this process for PMI and nothing else
    // in the process owns it: the static guard above lets only one `from_env` take it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_SETFD on a descriptor we own; keeps children of this rank from inheriting it.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// A scripted fake PMI-1 server: answers the handshake, then `on_line` decides the reply
    /// to every other request (`None`: no reply). Returns the requests it saw.
    fn fake_server(
        sock: UnixStream,
        mut on_line: impl FnMut(&str) -> Option<String> + Send + 'static,
    ) -> thread::JoinHandle<Vec<String>> {
        thread::spawn(move || {
            let mut w = sock.try_clone().unwrap();
            let r = BufReader::new(sock);
            let mut seen = Vec::new();
            for l in r.lines() {
                let Ok(l) = l else { break };
                seen.push(l.clone());
                let reply = match line::parse(&l).map(|p| p.cmd.to_owned()).as_deref() {
                    Ok("init") => {
                        Some("cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n".into())
                    }
                    Ok("get_maxes") => {
                        Some("cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n".into())
                    }
                    Ok("get_my_kvsname") => Some("cmd=my_kvsname kvsname=kvs_42\n".into()),
                    _ => on_line(&l),
                };
                if let Some(reply) = reply {
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
            seen
        })
    }

    /// A well-behaved server with a KVS; `barrier_in` answers at once (one rank).
    fn kvs_server() -> impl FnMut(&str) -> Option<String> + Send + 'static {
        let mut kvs: HashMap<String, String> = HashMap::new();
        move |l| {
            let p = line::parse(l).unwrap();
            Some(match p.cmd {
                "put" => {
                    kvs.insert(p.get("key")?.into(), p.get("value")?.into());
                    "cmd=put_result rc=0 msg=success\n".into()
                }
                "get" => match kvs.get(p.get("key")?) {
                    Some(v) => format!("cmd=get_result rc=0 msg=success value={v}\n"),
                    None => "cmd=get_result rc=-1 msg=key_not_found\n".into(),
                },
                "barrier_in" => "cmd=barrier_out\n".into(),
                "get_universe_size" => "cmd=universe_size size=4\n".into(),
                "get_appnum" => "cmd=appnum appnum=0\n".into(),
                "finalize" => "cmd=finalize_ack\n".into(),
                _ => "cmd=error rc=-1\n".into(),
            })
        }
    }

    fn client(
        on_line: impl FnMut(&str) -> Option<String> + Send + 'static,
    ) -> (Result<Pmi>, thread::JoinHandle<Vec<String>>) {
        let (a, b) = UnixStream::pair().unwrap();
        let srv = fake_server(b, on_line);
        (Pmi::from_socket(OwnedFd::from(a), 1, 4), srv)
    }

    #[test]
    fn full_dialogue_against_a_fake_server() {
        let (pmi, srv) = client(kvs_server());
        let mut pmi = pmi.unwrap();
        assert_eq!((pmi.rank(), pmi.size(), pmi.kvsname()), (1, 4, "kvs_42"));
        assert_eq!(
            pmi.maxes(),
            Maxes {
                kvsname_max: 256,
                keylen_max: 64,
                vallen_max: 1024
            }
        );
        pmi.put("tocsin.addr.1", "deadbeef").unwrap();
        pmi.barrier().unwrap();
        assert_eq!(pmi.get("tocsin.addr.1").unwrap(), "deadbeef");
        assert_eq!(pmi.universe_size().unwrap(), 4);
        assert_eq!(pmi.appnum().unwrap(), 0);
        pmi.finalize().unwrap();
        let seen = srv.join().unwrap();
        assert_eq!(
            seen,
            vec![
                "cmd=init pmi_version=1 pmi_subversion=1",
                "cmd=get_maxes",
                "cmd=get_my_kvsname",
                "cmd=put kvsname=kvs_42 key=tocsin.addr.1 value=deadbeef",
                "cmd=barrier_in",
                "cmd=get kvsname=kvs_42 key=tocsin.addr.1",
                "cmd=get_universe_size",
                "cmd=get_appnum",
                "cmd=finalize",
            ]
        );
    }

    #[test]
    fn missing_key_names_the_key() {
        let (pmi, _srv) = client(kvs_server());
        let mut pmi = pmi.unwrap();
        let e = pmi.get("nokey").unwrap_err();
        assert!(matches!(e, Error::Pmi(_)));
        let s = e.to_string();
        assert!(
            s.contains("\"nokey\"") && s.contains("kvs_42") && s.contains("rc=-1"),
            "{s}"
        );
        // The connection is still usable afterwards.
        pmi.put("k", "v").unwrap();
        assert_eq!(pmi.get("k").unwrap(), "v");
    }

    #[test]
    fn invalid_keys_and_values_are_refused_before_sending() {
        let (pmi, srv) = client(kvs_server());
        let mut pmi = pmi.unwrap();
        for (k, v) in [
            ("a b", "v"),
            ("a=b", "v"),
            ("", "v"),
            ("k", "x y"),
            ("k", "x=y"),
            ("k", ""),
        ] {
            let e = pmi.put(k, v).unwrap_err();
            assert!(matches!(e, Error::Pmi(_)), "{k:?}={v:?}: {e}");
        }
        let e = pmi.put(&"k".repeat(65), "v").unwrap_err().to_string();
        assert!(e.contains("at most 64"), "{e}");
        let e = pmi.put("k", &"v".repeat(1025)).unwrap_err().to_string();
        assert!(e.contains("at most 1024"), "{e}");
        assert!(pmi.get("a b").is_err());
        drop(pmi);
        let seen = srv.join().unwrap();
        assert_eq!(seen.len(), 3, "only the handshake went out: {seen:?}");
    }

    #[test]
    fn nonzero_rc_and_wrong_replies_are_errors_naming_the_command() {
        let (pmi, _srv) = client(|l| {
            Some(match line::parse(l).unwrap().cmd {
                "put" => "cmd=put_result rc=3 msg=full\n".into(),
                "barrier_in" => "cmd=something_else\n".into(),
                "finalize" => "garbage\n".into(),
                _ => return None,
            })
        });
        let mut pmi = pmi.unwrap();
        let e = pmi.put("k", "v").unwrap_err().to_string();
        assert!(e.contains("put of key \"k\"") && e.contains("rc=3"), "{e}");
        let e = pmi.barrier().unwrap_err().to_string();
        assert!(
            e.contains("barrier") && e.contains("cmd=something_else"),
            "{e}"
        );
        let e = pmi.finalize().unwrap_err().to_string();
        assert!(e.contains("finalize") && e.contains("garbage"), "{e}");
    }

    #[test]
    fn server_hanging_up_is_an_error_not_a_hang() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            let mut w = b.try_clone().unwrap();
            let mut r = BufReader::new(b);
            for reply in [
                "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n",
                "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n",
                "cmd=my_kvsname kvsname=k\n",
                "cmd=barr",
            ] {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                w.write_all(reply.as_bytes()).unwrap();
            }
            // Returning drops both ends of the server's socket: EOF for the client.
        });
        let mut pmi = Pmi::from_socket(OwnedFd::from(a), 0, 2).unwrap();
        let e = pmi.barrier().unwrap_err().to_string();
        assert!(
            e.contains("barrier") && e.contains("closed") && e.contains("cmd=barr"),
            "{e}"
        );
        t.join().unwrap();
    }

    #[test]
    fn bad_handshake_replies() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            let mut w = b.try_clone().unwrap();
            let mut r = BufReader::new(b);
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            w.write_all(b"cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n")
                .unwrap();
        });
        let e = Pmi::from_socket(OwnedFd::from(a), 0, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PMI version 2"), "{e}");
        t.join().unwrap();

        let (a, _b) = UnixStream::pair().unwrap();
        let e = Pmi::from_socket(OwnedFd::from(a), 4, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 4") && e.contains("4 ranks"), "{e}");
    }

    #[test]
    fn abort_sends_a_clean_line() {
        let (pmi, srv) = client(|_| None);
        let mut pmi = pmi.unwrap();
        pmi.abort(7, "out of memory: x=y").unwrap();
        drop(pmi);
        let seen = srv.join().unwrap();
        assert_eq!(seen[3], "cmd=abort exitcode=7 error_msg=out_of_memory:_x:y");
    }

    /// A server behaving as Slurm 22.05's `mpi/pmi2` agent does for PMI-1 clients: the first
    /// request is read with one `read` of at most 64 bytes and must be `init` alone; every
    /// later request with one `read` of at most 1024 bytes, which must hold exactly one
    /// line; Slurm's reply formats. Returns the requests, or the protocol violation.
    fn slurm_like(sock: UnixStream, mapping: &'static str) -> thread::JoinHandle<Vec<String>> {
        use std::io::Read;
        thread::spawn(move || {
            let mut s = sock;
            let mut seen = Vec::new();
            let mut kvs: HashMap<String, String> = HashMap::new();
            kvs.insert("PMI_process_mapping".into(), mapping.into());
            let mut first = true;
            loop {
                let mut buf = vec![0u8; if first { 64 } else { 1024 }];
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return seen,
                    Ok(n) => n,
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(
                    text.ends_with('\n') && text.matches('\n').count() == 1,
                    "Slurm would misread this request: {text:?}"
                );
                let l = line::parse(&text).unwrap();
                if first {
                    assert_eq!(l.cmd, "init");
                }
                first = false;
                seen.push(text.trim_end().to_owned());
                let reply = match l.cmd {
                    "init" => "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1\n".into(),
                    "get_maxes" => {
                        "cmd=maxes rc=0 kvsname_max=256 keylen_max=256 vallen_max=1024\n".into()
                    }
                    "get_my_kvsname" => "cmd=my_kvsname rc=0 kvsname=12.0\n".into(),
                    "get_appnum" => "cmd=appnum rc=0 appnum=-1\n".into(),
                    "put" => {
                        kvs.insert(l.get("key").unwrap().into(), l.get("value").unwrap().into());
                        "cmd=put_result rc=0\n".into()
                    }
                    "get" => match kvs.get(l.get("key").unwrap()) {
                        Some(v) => format!("cmd=get_result rc=0 value={v}\n"),
                        None => "cmd=get_result rc=1\n".into(),
                    },
                    "barrier_in" => "cmd=barrier_out rc=0\n".into(),
                    "finalize" => "cmd=finalize_ack rc=0\n".into(),
                    c => panic!("unexpected {c}"),
                };
                s.write_all(reply.as_bytes()).unwrap();
            }
        })
    }

    #[test]
    fn works_against_a_slurm_like_server() {
        let (a, b) = UnixStream::pair().unwrap();
        let srv = slurm_like(b, "(vector,(0,2,2))");
        let mut pmi = Pmi::from_socket(OwnedFd::from(a), 2, 4).unwrap();
        assert_eq!(pmi.kvsname(), "12.0");
        assert_eq!(pmi.appnum().unwrap(), -1);
        assert_eq!(pmi.try_get("absent").unwrap(), None);
        let e = pmi.get("absent").unwrap_err().to_string();
        assert!(e.contains("\"absent\"") && e.contains("rc=1"), "{e}");
        pmi.put("tocsin.k", "v").unwrap();
        pmi.barrier().unwrap();
        assert_eq!(pmi.try_get("tocsin.k").unwrap().as_deref(), Some("v"));
        assert_eq!(pmi.process_mapping().unwrap(), Some(vec![0, 0, 1, 1]));
        // A value that fits vallen_max=1024 but whose request line does not fit 1024 bytes.
        let e = pmi.put("k", &"v".repeat(1000)).unwrap_err().to_string();
        assert!(e.contains("1024") && e.contains("1000-byte value"), "{e}");
        pmi.put("k", &"v".repeat(900)).unwrap();
        pmi.finalize().unwrap();
        let seen = srv.join().unwrap();
        assert_eq!(seen[0], "cmd=init pmi_version=1 pmi_subversion=1");
        assert_eq!(seen.last().unwrap(), "cmd=finalize");
    }

    #[test]
    fn process_mapping_absent_empty_or_malformed() {
        let (a, b) = UnixStream::pair().unwrap();
        let _srv = slurm_like(b, "");
        let mut pmi = Pmi::from_socket(OwnedFd::from(a), 0, 2).unwrap();
        assert_eq!(pmi.process_mapping().unwrap(), None, "empty means unknown");
        drop(pmi);

        let (pmi, _srv) = client(kvs_server());
        let mut pmi = pmi.unwrap();
        assert_eq!(pmi.process_mapping().unwrap(), None, "not published");
        pmi.put("PMI_process_mapping", "(vector,(0,1,4))").unwrap();
        assert_eq!(pmi.process_mapping().unwrap(), Some(vec![0; 4]));
        pmi.put("PMI_process_mapping", "(vector,(0,1,x))").unwrap();
        let e = pmi.process_mapping().unwrap_err();
        assert!(matches!(e, Error::Pmi(_)));
        let e = e.to_string();
        assert!(
            e.contains("(vector,(0,1,x))") && e.contains("accepted"),
            "{e}"
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn no_launcher_is_a_singleton() {
        assert!(Pmi::from_vars(vars(&[])).unwrap().is_none());
        assert!(
            Pmi::from_vars(vars(&[("PMI_RANK", "0"), ("PMI_SIZE", "1")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_environment_is_reported() {
        for (env, needle) in [
            (vec![("PMI_FD", "abc")], "PMI_FD=\"abc\""),
            (vec![("PMI_FD", "-3")], "PMI_FD=\"-3\""),
            (vec![("PMI_FD", "5")], "PMI_RANK is not set"),
            (
                vec![("PMI_FD", "5"), ("PMI_RANK", "x"), ("PMI_SIZE", "2")],
                "PMI_RANK=\"x\"",
            ),
            (
                vec![("PMI_FD", "987654"), ("PMI_RANK", "0"), ("PMI_SIZE", "2")],
                "not an open file descriptor",
            ),
            (vec![("PMI_PORT", "nohost")], "<host>:<port>"),
            (vec![("PMI_PORT", "host:notaport")], "<host>:<port>"),
        ] {
            let e = Pmi::from_vars(vars(&env)).unwrap_err().to_string();
            assert!(e.contains(needle), "{env:?}: {e}");
        }
    }

    #[test]
    fn pmi_port_with_id_learns_rank_and_size() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert_eq!(l, "cmd=initack pmiid=3\n");
            w.write_all(b"cmd=initack\ncmd=set size=5\ncmd=set rank=3\ncmd=set debug=0\n")
                .unwrap();
            for reply in [
                "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n",
                "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n",
                "cmd=my_kvsname kvsname=kvs_tcp\n",
                "cmd=finalize_ack\n",
            ] {
                l.clear();
                r.read_line(&mut l).unwrap();
                w.write_all(reply.as_bytes()).unwrap();
            }
        });
        let addr = format!("127.0.0.1:{port}");
        let pmi = Pmi::from_vars(vars(&[("PMI_PORT", &addr), ("PMI_ID", "3")]))
            .unwrap()
            .unwrap();
        assert_eq!((pmi.rank(), pmi.size(), pmi.kvsname()), (3, 5, "kvs_tcp"));
        pmi.finalize().unwrap();
        t.join().unwrap();
    }

    /// A server that answers every request line with the next of `replies` (raw bytes), then
    /// closes the connection.
    fn scripted(sock: UnixStream, replies: Vec<Vec<u8>>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut w = sock.try_clone().unwrap();
            let mut r = BufReader::new(sock);
            for reply in replies {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if w.write_all(&reply).is_err() {
                    return;
                }
            }
        })
    }

    const HANDSHAKE: [&str; 3] = [
        "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n",
        "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n",
        "cmd=my_kvsname kvsname=k\n",
    ];

    /// Runs the handshake then one `get` against a server answering it with `reply`.
    fn get_with_reply(reply: Vec<u8>) -> Result<String> {
        let (a, b) = UnixStream::pair().unwrap();
        let mut replies: Vec<Vec<u8>> = HANDSHAKE.iter().map(|r| r.as_bytes().to_vec()).collect();
        replies.push(reply);
        let t = scripted(b, replies);
        let mut pmi = Pmi::from_socket(OwnedFd::from(a), 0, 2).unwrap();
        let r = pmi.get("key");
        drop(pmi);
        t.join().unwrap();
        r
    }

    #[test]
    fn malformed_replies_are_errors_naming_what_was_wrong() {
        for (reply, needle) in [
            (&b"cmd=get_result rc=0 val"[..], "closed the PMI connection"),
            (b"", "closed the PMI connection"),
            (b"cmd=get_result rc=0\n", "missing field `value`"),
            (b"cmd=get_result rc=7 value=x\n", "rc=7"),
            (b"cmd=get_result rc=zz value=x\n", "rc=zz"),
            (b"cmd=get_result rc=0 value=x value=y\n", "appears twice"),
            (b"cmd=barrier_out\n", "expected cmd=get_result"),
            (b"\xff\xfe\n", "not UTF-8"),
            (b"\n", "empty line"),
        ] {
            let e = get_with_reply(reply.to_vec()).unwrap_err();
            assert!(matches!(e, Error::Pmi(_)), "{reply:?}: {e:?}");
            let s = e.to_string();
            assert!(s.contains(needle), "{reply:?}: {s}");
            assert!(s.contains("\"key\""), "{reply:?}: {s}");
        }
        // Unknown keys are ignored.
        let v = get_with_reply(b"cmd=get_result rc=0 msg=success extra=1 value=v\n".to_vec());
        assert_eq!(v.unwrap(), "v");
    }

    #[test]
    fn oversize_lines_and_values_are_errors_not_oom() {
        // A line of 10 MiB without a newline: refused once 64 KiB are buffered.
        let mut huge = b"cmd=get_result rc=0 value=".to_vec();
        huge.resize(10 << 20, b'x');
        let e = get_with_reply(huge).unwrap_err().to_string();
        assert!(e.contains(&format!("longer than {MAX_LINE} bytes")), "{e}");
        // A complete line just over the limit.
        let mut long = b"cmd=get_result rc=0 value=".to_vec();
        long.resize(MAX_LINE + 1, b'x');
        long.push(b'\n');
        let e = get_with_reply(long).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        // A value longer than the vallen_max the launcher announced (1024).
        let mut v = b"cmd=get_result rc=0 value=".to_vec();
        v.resize(v.len() + 2000, b'y');
        v.push(b'\n');
        let e = get_with_reply(v).unwrap_err().to_string();
        assert!(
            e.contains("2000 bytes") && e.contains("vallen_max=1024"),
            "{e}"
        );
    }

    #[test]
    fn retry_after_a_failed_init_reports_the_first_failure() {
        use std::os::fd::IntoRawFd;
        let (a, b) = UnixStream::pair().unwrap();
        let t = scripted(
            b,
            vec![b"cmd=response_to_init pmi_version=9 rc=0\n".to_vec()],
        );
        let fd = a.into_raw_fd().to_string();
        let env = vars(&[("PMI_FD", &fd), ("PMI_RANK", "0"), ("PMI_SIZE", "2")]);
        let first = Pmi::from_vars(&env).unwrap_err().to_string();
        assert!(first.contains("PMI version 9"), "{first}");
        t.join().unwrap();
        // The first attempt consumed (closed) PMI_FD: the retry says so and why.
        let second = Pmi::from_vars(&env).unwrap_err().to_string();
        assert!(!second.contains("not an open file descriptor"), "{second}");
        assert!(
            second.contains(&format!("PMI_FD={fd}"))
                && second.contains("earlier initialization")
                && second.contains("PMI version 9"),
            "{second}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever a server sends before closing, the client returns (no panic, no hang).
        #[test]
        fn arbitrary_server_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            prefix in 0usize..4,
        ) {
            let (a, b) = UnixStream::pair().unwrap();
            let mut replies: Vec<Vec<u8>> =
                HANDSHAKE[..prefix.min(3)].iter().map(|r| r.as_bytes().to_vec()).collect();
            replies.push(bytes);
            let t = scripted(b, replies);
            if let Ok(mut pmi) = Pmi::from_socket(OwnedFd::from(a), 0, 2) {
                let _ = pmi.get("key");
                let _ = pmi.barrier();
            }
            t.join().unwrap();
        }
    }
}
