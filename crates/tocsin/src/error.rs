//! Errors: every way a tocsin call can fail, each naming what was wrong.
//!
//! Owns the [`Error`] type and nothing else; modules map their failures into it.

use crate::{Rank, Tag};

/// Result alias used by every fallible tocsin call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Each variant names the offending value so a user can act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rank outside `0..size` (and not [`ANY_SOURCE`](crate::ANY_SOURCE) where allowed).
    #[error("invalid rank {rank}: the communicator has {size} ranks (valid ranks are 0..{size})")]
    InvalidRank {
        /// The rank given.
        rank: Rank,
        /// Size of the communicator.
        size: u32,
    },
    /// A negative tag other than [`ANY_TAG`](crate::ANY_TAG), or `ANY_TAG` on a send.
    #[error("invalid tag {tag}: tags are 0..=i32::MAX (ANY_TAG = -1 only on receives)")]
    InvalidTag {
        /// The tag given.
        tag: Tag,
    },
    /// `ANY_SOURCE` given where a definite rank is needed (a send).
    #[error("ANY_SOURCE is only valid for receives and probes")]
    AnySourceOnSend,
    /// The message was longer than the receive buffer. The first `buffer_len` bytes were
    /// delivered, the rest discarded; later messages are unaffected.
    #[error(
        "message truncated: {message_len} bytes from rank {from} tag {tag} \
         into a {buffer_len}-byte receive buffer"
    )]
    Truncated {
        /// Length of the message sent, bytes.
        message_len: usize,
        /// Length of the receive buffer, bytes.
        buffer_len: usize,
        /// Rank that sent it.
        from: Rank,
        /// Its tag.
        tag: Tag,
    },
    /// A peer process exited (or was killed) while this rank waited on it.
    #[error("rank {rank} (pid {pid}) died while rank {me} was waiting on it")]
    PeerDied {
        /// The dead rank.
        rank: Rank,
        /// Its process id.
        pid: i32,
        /// The rank that noticed.
        me: Rank,
    },
    /// The request was cancelled ([`Request::cancel`](crate::Request::cancel)) before it
    /// matched: nothing was transferred.
    #[error("request cancelled before it matched (rank {peer}, tag {tag})")]
    Cancelled {
        /// The peer named by the request (`ANY_SOURCE` for a wildcard receive).
        peer: Rank,
        /// Its tag.
        tag: Tag,
    },
    /// An argument of a call that cannot be used: a buffer length that disagrees with the
    /// communicator or with the other arguments, an operation not defined on the element
    /// type, a group rank out of range…
    #[error("invalid {what}: {detail}")]
    InvalidArgument {
        /// Which argument ("buffer length", "operation", "ranks"…).
        what: &'static str,
        /// What was wrong and what is accepted.
        detail: String,
    },
    /// A wire header or record that cannot be valid: a protocol bug or memory corruption.
    #[error("malformed {what} from rank {from}: {detail}")]
    Malformed {
        /// What was being parsed ("header", "record", …).
        what: &'static str,
        /// The peer it came from.
        from: Rank,
        /// Why it is invalid.
        detail: String,
    },
    /// A configuration value (environment variable or builder) that cannot be used.
    #[error("bad configuration {name}={value:?}: {reason}")]
    Config {
        /// Variable or setting name, e.g. `TOCSIN_PROGRESS`.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected and what is accepted.
        reason: String,
    },
    /// The PMI bootstrap (launcher protocol) failed.
    #[error("PMI bootstrap: {0}")]
    Pmi(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What tocsin was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something this build or this machine does not offer.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The library was already initialized in this process.
    #[error("tocsin is already initialized in this process")]
    AlreadyInitialized,
}

impl Error {
    /// Wraps the current `errno` with a context string.
    pub(crate) fn last_os(context: impl Into<String>) -> Self {
        Error::Io {
            context: context.into(),
            source: std::io::Error::last_os_error(),
        }
    }

    /// Wraps an I/O error with a context string.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
