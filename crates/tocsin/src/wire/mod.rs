//! Wire headers: the fixed little-endian encoding of every protocol message.
//!
//! Owns [`Header`] and its encoding/decoding, sans I/O: it never touches rings, requests or
//! buffers. Every decode validates the kind, the flags and the lengths, so a corrupted or
//! malicious record is reported as [`DecodeError`] and never trusted.
//!
//! Layout (offsets in bytes, little-endian):
//!
//! | offset | field | notes |
//! |---|---|---|
//! | 0 | `kind: u8` | [`Kind`] |
//! | 1 | `flags: u8` | `FLAG_*` |
//! | 2 | `ctx: u16` | communicator context |
//! | 4 | `tag: i32` | message tag |
//! | 8 | `len: u64` | eager/RTS: message bytes; CTS: bytes accepted; DATA: chunk bytes |
//! | 16 | `sreq: u64` | sender-side request token (RTS, CTS, FIN to sender) |
//! | 24 | `rreq: u64` | receiver-side request token (CTS, DATA, FIN to receiver) |
//! | 32 | `addr: u64` | RTS: sender buffer address; CTS: receiver buffer address (CMA) |
//! | 40 | `offset: u64` | DATA: byte offset of the chunk in the message; CTS: byte offset of the part the sender writes (0, or the receiver's share of a CMA split) |
//!
//! An EAGER header stops after `len` (16 bytes) so that a small message and its header fit
//! in one 64-byte cache line with the ring's record word; every other kind is 48 bytes.

/// Message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A whole message, payload follows the header.
    Eager = 1,
    /// Ready-to-send: envelope and length of a rendezvous message, no payload.
    Rts = 2,
    /// Clear-to-send: the receiver matched an RTS and accepts `len` bytes.
    Cts = 3,
    /// Finish: a single-copy transfer is done.
    Fin = 4,
    /// A chunk of a pipelined rendezvous, payload follows the header.
    Data = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Eager,
            2 => Kind::Rts,
            3 => Kind::Cts,
            4 => Kind::Fin,
            5 => Kind::Data,
            _ => return None,
        })
    }
}

/// RTS: `addr` is the sender's buffer, readable with CMA. CTS: `addr` is the receiver's
/// buffer, writable with CMA (else the sender streams DATA chunks).
pub const FLAG_CMA: u8 = 0x1;
/// FIN: addressed to the receiver (`rreq`); without it, to the sender (`sreq`).
pub const FLAG_TO_RECEIVER: u8 = 0x2;
/// RTS: the sender waits in a blocking send until this message is delivered, so a
/// receiver that also waits may ask it (CTS with `offset > 0`) to copy part of the data
/// itself while the receiver copies the rest: both idle cores copy (CMA split).
pub const FLAG_SENDER_WAITS: u8 = 0x4;
const KNOWN_FLAGS: u8 = FLAG_CMA | FLAG_TO_RECEIVER | FLAG_SENDER_WAITS;

/// Encoded size of an EAGER header, bytes.
pub const EAGER_HDR_LEN: usize = 16;
/// Encoded size of every other header, bytes.
pub const FULL_HDR_LEN: usize = 48;

/// One protocol header. Fields unused by a kind are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: Kind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Communicator context (user traffic vs internal collectives).
    pub ctx: u16,
    /// Tag.
    pub tag: i32,
    /// Bytes; meaning depends on the kind (see the module table).
    pub len: u64,
    /// Sender-side request token.
    pub sreq: u64,
    /// Receiver-side request token.
    pub rreq: u64,
    /// Buffer address for CMA.
    pub addr: u64,
    /// DATA chunk offset, bytes.
    pub offset: u64,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its header.
    #[error("record of {got} bytes is shorter than its {need}-byte header")]
    Short {
        /// Bytes present.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Unknown kind byte.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// Unknown flag bits.
    #[error("unknown flags {0:#x}")]
    Flags(u8),
    /// Payload length disagrees with the header's `len`.
    #[error("{kind:?} header says {len} payload bytes but {got} follow")]
    PayloadLen {
        /// Kind.
        kind: Kind,
        /// Header's `len`.
        len: u64,
        /// Bytes actually present.
        got: usize,
    },
}

impl Header {
    /// A header of `kind` with every other field zero.
    pub fn new(kind: Kind) -> Header {
        Header {
            kind,
            flags: 0,
            ctx: 0,
            tag: 0,
            len: 0,
            sreq: 0,
            rreq: 0,
            addr: 0,
            offset: 0,
        }
    }

    /// Encoded size of this header, bytes.
    pub fn encoded_len(&self) -> usize {
        if self.kind == Kind::Eager {
            EAGER_HDR_LEN
        } else {
            FULL_HDR_LEN
        }
    }

    /// Writes the header at the start of `out`; returns the bytes written.
    ///
    /// # Panics
    /// If `out` is shorter than [`Header::encoded_len`].
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let n = self.encoded_len();
        let out = &mut out[..n];
        out[0] = self.kind as u8;
        out[1] = self.flags;
        out[2..4].copy_from_slice(&self.ctx.to_le_bytes());
        out[4..8].copy_from_slice(&self.tag.to_le_bytes());
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        if n == FULL_HDR_LEN {
            out[16..24].copy_from_slice(&self.sreq.to_le_bytes());
            out[24..32].copy_from_slice(&self.rreq.to_le_bytes());
            out[32..40].copy_from_slice(&self.addr.to_le_bytes());
            out[40..48].copy_from_slice(&self.offset.to_le_bytes());
        }
        n
    }

    /// Decodes the header at the start of `prefix`, which may hold only part of the
    /// payload (a stream transport reads a record's header before its payload).
    ///
    /// # Errors
    /// As [`Header::decode`], except for the payload length, which is not checked.
    pub fn decode_header(prefix: &[u8]) -> Result<Header, DecodeError> {
        let rec = prefix;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rec[o..o + 8]);
            u64::from_le_bytes(b)
        };
        if rec.len() < EAGER_HDR_LEN {
            return Err(DecodeError::Short {
                got: rec.len(),
                need: EAGER_HDR_LEN,
            });
        }
        let kind = Kind::from_u8(rec[0]).ok_or(DecodeError::Kind(rec[0]))?;
        let flags = rec[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::Flags(flags));
        }
        let mut h = Header::new(kind);
        h.flags = flags;
        h.ctx = u16::from_le_bytes([rec[2], rec[3]]);
        h.tag = i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        h.len = u64_at(8);
        let hl = h.encoded_len();
        if rec.len() < hl {
            return Err(DecodeError::Short {
                got: rec.len(),
                need: hl,
            });
        }
        if hl == FULL_HDR_LEN {
            h.sreq = u64_at(16);
            h.rreq = u64_at(24);
            h.addr = u64_at(32);
            h.offset = u64_at(40);
        }
        Ok(h)
    }

    /// Decodes a record body: the header and the payload that follows it.
    ///
    /// # Errors
    /// [`DecodeError`] if the record is short, has an unknown kind or flag, or its payload
    /// length disagrees with the header (EAGER and DATA carry exactly `len` bytes; the
    /// others carry none).
    pub fn decode(rec: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
        let h = Header::decode_header(rec)?;
        let payload = &rec[h.encoded_len()..];
        let expect = match h.kind {
            Kind::Eager | Kind::Data => h.len,
            _ => 0,
        };
        if payload.len() as u64 != expect {
            return Err(DecodeError::PayloadLen {
                kind: h.kind,
                len: h.len,
                got: payload.len(),
            });
        }
        Ok((h, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(h: Header, payload: &[u8]) -> (Header, Vec<u8>) {
        let mut buf = vec![0u8; h.encoded_len() + payload.len()];
        let n = h.encode(&mut buf);
        buf[n..].copy_from_slice(payload);
        let (d, p) = Header::decode(&buf).unwrap();
        (d, p.to_vec())
    }

    #[test]
    fn eager_is_16_bytes_and_roundtrips() {
        let mut h = Header::new(Kind::Eager);
        h.tag = 42;
        h.ctx = 1;
        h.len = 3;
        assert_eq!(h.encoded_len(), 16);
        assert_eq!(roundtrip(h, b"abc"), (h, b"abc".to_vec()));
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(
            Header::decode(&[1, 0, 0]),
            Err(DecodeError::Short { got: 3, need: 16 })
        );
        let mut b = [0u8; 48];
        b[0] = 9;
        assert_eq!(Header::decode(&b), Err(DecodeError::Kind(9)));
        b[0] = Kind::Rts as u8;
        b[1] = 0x80;
        assert_eq!(Header::decode(&b), Err(DecodeError::Flags(0x80)));
        b[1] = 0;
        assert!(Header::decode(&b[..20]).is_err());
        let mut e = [0u8; 20];
        e[0] = Kind::Eager as u8;
        e[8] = 5; // says 5 bytes, 4 follow
        assert!(matches!(
            Header::decode(&e),
            Err(DecodeError::PayloadLen { .. })
        ));
    }

    proptest! {
        #[test]
        fn full_headers_roundtrip(kind in 2u8..=5, flags in 0u8..4, ctx: u16, tag: i32,
                                  sreq: u64, rreq: u64, addr: u64, offset: u64,
                                  payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut h = Header::new(Kind::from_u8(kind).unwrap());
            h.flags = flags; h.ctx = ctx; h.tag = tag; h.sreq = sreq; h.rreq = rreq;
            h.addr = addr; h.offset = offset;
            let payload = if h.kind == Kind::Data { payload } else { vec![] };
            h.len = if h.kind == Kind::Data { payload.len() as u64 } else { sreq ^ rreq };
            prop_assert_eq!(roundtrip(h, &payload), (h, payload));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Header::decode(&bytes);
        }

        /// Whatever decodes is exactly what `encode` would write: no field is trusted
        /// without validation and no byte beyond the record is read.
        #[test]
        fn decoded_records_re_encode_identically(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            kind in 1u8..=5,
            flags in 0u8..4,
        ) {
            // Bias towards valid kinds/flags so the payload-length checks get exercised.
            let mut bytes = bytes;
            if bytes.len() >= 2 {
                bytes[0] = kind;
                bytes[1] = flags;
            }
            if let Ok((h, payload)) = Header::decode(&bytes) {
                let mut out = vec![0u8; h.encoded_len() + payload.len()];
                let n = h.encode(&mut out);
                out[n..].copy_from_slice(payload);
                prop_assert_eq!(out, bytes);
            }
        }

        /// Every strict prefix of a valid record is rejected, never misread.
        #[test]
        fn truncations_of_valid_records_are_errors(
            kind in 1u8..=5, flags in 0u8..4, tag: i32, ctx: u16, sreq: u64,
            payload in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut h = Header::new(Kind::from_u8(kind).unwrap());
            h.flags = flags; h.tag = tag; h.ctx = ctx;
            let carries = matches!(h.kind, Kind::Eager | Kind::Data);
            let payload = if carries { payload } else { vec![] };
            h.len = if carries { payload.len() as u64 } else { 0 };
            if h.kind != Kind::Eager { h.sreq = sreq; }
            let mut buf = vec![0u8; h.encoded_len() + payload.len()];
            let n = h.encode(&mut buf);
            buf[n..].copy_from_slice(&payload);
            let (d, p) = Header::decode(&buf).unwrap();
            prop_assert_eq!(d, h);
            prop_assert_eq!(p, &payload[..]);
            for cut in 0..buf.len() {
                prop_assert!(Header::decode(&buf[..cut]).is_err(), "prefix of {} bytes", cut);
            }
        }

        /// A huge `len` (e.g. u64::MAX) is a payload-length error, not an allocation or an
        /// out-of-bounds slice.
        #[test]
        fn huge_lengths_are_rejected(len in (1u64 << 32)..=u64::MAX, kind in prop::sample::select(vec![1u8, 5])) {
            let mut h = Header::new(Kind::from_u8(kind).unwrap());
            h.len = len;
            let mut buf = vec![0u8; h.encoded_len() + 8];
            h.encode(&mut buf);
            let is_payload_len_err = matches!(Header::decode(&buf), Err(DecodeError::PayloadLen { .. }));
            prop_assert!(is_payload_len_err);
        }
    }
}
