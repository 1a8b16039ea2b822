//! The lock-free single-producer / single-consumer byte ring that carries one direction of
//! one pair of ranks.
//!
//! Owns the ring's memory layout and its publication protocol; it knows nothing about
//! headers, requests or peers (records are opaque bytes) and never blocks or allocates, so
//! both ends may run in a signal or interrupt handler (as long as each end has one user at a
//! time, which the progress engine guarantees with its lock).
//!
//! ## Layout and protocol
//! A ring is a control line (the consumer's `head` in the first 8 bytes of a 64-byte cache
//! line; the shared-memory driver keeps its producer's rarely written "space wanted" word at
//! byte 8 of that line, outside this module's protocol) and a
//! data area of `cap` bytes (a power of two). Positions are absolute byte counts (`u64`,
//! never wrapping in practice); the offset of position `p` is `p % cap` (computed as
//! `p & (cap - 1)`: `cap` is a power of two, and a division would cost tens of cycles in
//! every poll).
//!
//! Records start on 64-byte boundaries. The first 8 bytes of a record are its *record word*:
//! `magic << 32 | body_len` for a message (the record spans `8 + body_len` rounded up to 64
//! bytes), `pad_magic << 32 | span` for a pad. The producer writes
//! the body, then stores the record word with `Release`; the consumer polls the word at
//! `head` with `Acquire`, so a small message costs one cache-line transfer (no separate
//! tail counter). A record never wraps: if it does not fit before the end of the data area
//! the producer first writes a *pad* record up to the end.
//!
//! Before publishing a record the producer zeroes the word where the *next* record will start
//! (the line after this one's end, or the start of the data area after a pad), and room is
//! always kept for that line. Hence the word at `head` is always either 0 or a record word
//! published after it was zeroed: stale payload bytes can never look like a record word, and
//! the producer (reading `head` with `Acquire` before reusing space) never overwrites an
//! unread byte. The consumer clears only each record's word (so that even a corrupted ring
//! is read at most once around), never its payload lines: they stay shared instead of moving
//! to the consumer's cache and back to the producer's. A fresh ring is all zeros.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::atomic::Ordering;

use std::sync::atomic::AtomicU64;

/// Cache line size assumed for layout, bytes.
pub const LINE: usize = 64;
/// Bytes of the record word that precedes every body.
pub const WORD: usize = 8;
const MAGIC_MSG: u64 = 0x7C51_0001;
const MAGIC_PAD: u64 = 0x7C51_0002;

/// Bytes of shared memory a ring with a `cap`-byte data area occupies (control line included).
pub const fn footprint(cap: usize) -> usize {
    LINE + cap
}

/// Largest body a ring of `cap` bytes accepts: a quarter of the ring minus the record word,
/// so that a record plus a pad always fits in an empty ring.
pub const fn max_body(cap: usize) -> usize {
    cap / 4 - WORD
}

const fn round_up(n: usize) -> usize {
    (n + LINE - 1) & !(LINE - 1)
}

/// The data-area offset of absolute position `pos` in a ring of `cap` bytes (a power of
/// two, [`RingMem`]'s contract): `pos % cap` without a division.
#[inline(always)]
fn offset_of(pos: u64, cap: usize) -> usize {
    (pos & (cap as u64 - 1)) as usize
}

/// A corrupted ring: the record word at `head` is neither zero nor a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt ring record word {word:#x} at offset {offset}")]
pub struct Corrupt {
    /// The word read.
    pub word: u64,
    /// Its offset in the data area, bytes.
    pub offset: usize,
}

/// The memory a ring lives in: words accessed atomically, bytes copied plainly.
///
/// # Safety
/// Implementations must give `cap` bytes of data area (a power of two, ≥ 4 lines) plus the
/// control word, valid for as long as the value lives, 8-byte aligned, shared by exactly one
/// producer and one consumer.
pub unsafe trait RingMem {
    /// Data area size, bytes.
    fn cap(&self) -> usize;
    /// Loads the consumer's head with `order`.
    fn head_load(&self, order: Ordering) -> u64;
    /// Stores the consumer's head with `order`.
    fn head_store(&self, v: u64, order: Ordering);
    /// Loads the 8-byte word at data offset `off` (8-aligned) with `order`.
    fn word_load(&self, off: usize, order: Ordering) -> u64;
    /// Stores the 8-byte word at data offset `off` (8-aligned) with `order`.
    fn word_store(&self, off: usize, v: u64, order: Ordering);
    /// Lets `f` fill `len` bytes at data offset `off` (no wrap).
    fn fill(&self, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8]));
    /// Lets `f` read `len` bytes at data offset `off` (no wrap).
    fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Hints that the lines of `off..off + len` (no wrap) will be read soon. Default:
    /// nothing.
    fn prefetch(&self, _off: usize, _len: usize) {}
}

/// Lines of a record after its first that [`Consumer::pop_with`] asks to be fetched as soon
/// as it sees the record word: a small record's second and later lines then travel while
/// its header is decoded and matched, not after (larger bodies stream through the
/// hardware prefetcher during the copy).
const PREFETCH_LINES: usize = 32;

/// A ring in a shared-memory mapping, addressed by raw pointer.
#[derive(Debug, Clone, Copy)]
pub struct ShmRing {
    ctrl: *const AtomicU64,
    data: *mut u8,
    cap: usize,
}

// SAFETY: the ring is shared memory designed for concurrent access by one producer and one
// consumer; all cross-thread accesses go through atomics (see the module protocol).
unsafe impl Send for ShmRing {}
// SAFETY: as for `Send`: `&ShmRing` only exposes the atomic protocol.
unsafe impl Sync for ShmRing {}

impl ShmRing {
    /// Views `footprint(cap)` bytes at `base` as a ring.
    ///
    /// # Safety
    /// `base` must be 64-byte aligned, point to `footprint(cap)` bytes that stay mapped while
    /// the ring is used, zeroed before first use, and `cap` must be a power of two ≥ 256.
    pub unsafe fn from_raw(base: *mut u8, cap: usize) -> ShmRing {
        crate::diag::debug_check!(cap.is_power_of_two() && cap >= 4 * LINE);
        crate::diag::debug_check!(base as usize % LINE == 0);
        ShmRing {
            ctrl: base as *const AtomicU64,
            // SAFETY: the caller guarantees `footprint(cap)` bytes at `base`.
            data: unsafe { base.add(LINE) },
            cap,
        }
    }
}

// SAFETY: `from_raw`'s contract gives the memory guarantees the trait asks for.
unsafe impl RingMem for ShmRing {
    fn cap(&self) -> usize {
        self.cap
    }
    fn head_load(&self, order: Ordering) -> u64 {
        // SAFETY: `ctrl` points to an aligned u64 in the mapping (from_raw's contract).
        unsafe { (*self.ctrl).load(order) }
    }
    fn head_store(&self, v: u64, order: Ordering) {
        // SAFETY: as in `head_load`.
        unsafe { (*self.ctrl).store(v, order) }
    }
    fn word_load(&self, off: usize, order: Ordering) -> u64 {
        crate::diag::debug_check!(off % 8 == 0 && off + 8 <= self.cap);
        // SAFETY: `off` is 8-aligned and inside the data area; the word is only ever
        // accessed atomically while it may be concurrently accessed (module protocol).
        unsafe { (*(self.data.add(off) as *const AtomicU64)).load(order) }
    }
    fn word_store(&self, off: usize, v: u64, order: Ordering) {
        crate::diag::debug_check!(off % 8 == 0 && off + 8 <= self.cap);
        // SAFETY: as in `word_load`.
        unsafe { (*(self.data.add(off) as *const AtomicU64)).store(v, order) }
    }
    fn fill(&self, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8])) {
        crate::diag::debug_check!(off + len <= self.cap);
        // SAFETY: the range is inside the data area and owned by the producer until it
        // publishes the record word (module protocol), so no one else accesses it.
        f(unsafe { std::slice::from_raw_parts_mut(self.data.add(off), len) })
    }
    fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        crate::diag::debug_check!(off + len <= self.cap);
        // SAFETY: the range belongs to a published record (acquired through its record
        // word) that the producer will not rewrite before the consumer releases `head`.
        f(unsafe { std::slice::from_raw_parts(self.data.add(off), len) })
    }
    #[inline]
    fn prefetch(&self, off: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let end = (off + len).min(self.cap);
            let mut at = off;
            while at < end {
                // SAFETY: `at` is inside the data area (clipped above); a prefetch reads
                // nothing architecturally and cannot fault.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        self.data.add(at) as *const i8,
                    )
                };
                at += LINE;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (off, len);
    }
}

/// The producing end of a ring. Keeps its tail and a cached copy of the consumer's head.
#[derive(Debug)]
pub struct Producer<M: RingMem> {
    mem: M,
    tail: u64,
    cached_head: u64,
}

impl<M: RingMem> Producer<M> {
    /// The producer of `mem`, starting at position 0 (a fresh, zeroed ring).
    pub fn new(mem: M) -> Self {
        Producer {
            mem,
            tail: 0,
            cached_head: 0,
        }
    }

    /// Largest body this ring accepts, bytes.
    pub fn max_body(&self) -> usize {
        max_body(self.mem.cap())
    }

    fn has_room(&mut self, need: u64) -> bool {
        let cap = self.mem.cap() as u64;
        if self.tail + need - self.cached_head <= cap {
            return true;
        }
        self.cached_head = self.mem.head_load(Ordering::Acquire);
        self.tail + need - self.cached_head <= cap
    }

    /// Appends a record whose body is `body_len` bytes, written by `fill` directly into the
    /// ring, and publishes it. Returns `false` (and calls nothing) if the ring is full:
    /// nothing is overwritten, the caller keeps the message and retries later.
    ///
    /// Async-signal-safe: no allocation, no lock, no system call.
    ///
    /// Ends the process ([`crate::diag::fatal`]) if `body_len > self.max_body()`: callers
    /// size records from it.
    pub fn try_push(&mut self, body_len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if body_len > self.max_body() {
            // Callers size records from `max_body`: a bug, in code handlers reach.
            crate::diag::fatal("ring: record body larger than the ring accepts");
        }
        let cap = self.mem.cap();
        let total = round_up(WORD + body_len);
        let off = offset_of(self.tail, cap);
        let to_end = cap - off;
        let pad = if to_end < total { to_end } else { 0 };
        // Room for the pad, the record, and the line whose first word we zero after it.
        if !self.has_room((pad + total + LINE) as u64) {
            return false;
        }
        let roff = (off + pad) & (cap - 1);
        // The next record's word reads 0 until that record is published. Stored first: that
        // line is usually cold (last written a lap ago), and under x86's in-order store
        // commit a slow store between the body and the record word would let a polling
        // consumer take the record's line back in between, costing one more transfer.
        self.mem
            .word_store((roff + total) & (cap - 1), 0, Ordering::Relaxed);
        self.mem.fill(roff + WORD, body_len, fill);
        self.mem
            .word_store(roff, MAGIC_MSG << 32 | body_len as u64, Ordering::Release);
        if pad > 0 {
            // Published after the record it leads to: a consumer that skips the pad finds
            // the record (or, before this store, nothing at `off`).
            self.mem
                .word_store(off, MAGIC_PAD << 32 | pad as u64, Ordering::Release);
        }
        self.tail += (pad + total) as u64;
        true
    }
}

/// The consuming end of a ring.
#[derive(Debug)]
pub struct Consumer<M: RingMem> {
    mem: M,
    head: u64,
}

impl<M: RingMem> Consumer<M> {
    /// The consumer of `mem`, starting at position 0 (a fresh, zeroed ring).
    pub fn new(mem: M) -> Self {
        Consumer { mem, head: 0 }
    }

    /// `true` if no record is published at the head (one atomic load).
    pub fn is_empty(&self) -> bool {
        let off = offset_of(self.head, self.mem.cap());
        self.mem.word_load(off, Ordering::Relaxed) == 0
    }

    fn release(&mut self, off: usize, total: usize) {
        // Only the record word: in the next lap a record starts here again (the same word
        // is read only after the producer rewrote it), and a corrupted ring whose every
        // line looks like a record is still read at most once around.
        self.mem.word_store(off, 0, Ordering::Relaxed);
        self.head += total as u64;
        self.mem.head_store(self.head, Ordering::Release);
    }

    /// If a record is published, calls `f` with its body (a view into the ring) and then,
    /// if `f` returns `true`, consumes it; if `f` returns `false` the record stays at the
    /// head (the caller cannot take it now). Returns `Ok(None)` if the ring is empty.
    ///
    /// Async-signal-safe: no allocation, no lock, no system call.
    ///
    /// # Errors
    /// [`Corrupt`] if the word at the head is not a valid record word.
    pub fn pop_with<R>(
        &mut self,
        f: impl FnOnce(&[u8]) -> (bool, R),
    ) -> Result<Option<R>, Corrupt> {
        let cap = self.mem.cap();
        loop {
            let off = offset_of(self.head, cap);
            let w = self.mem.word_load(off, Ordering::Acquire);
            if w == 0 {
                return Ok(None);
            }
            let low = (w & 0xFFFF_FFFF) as usize;
            match w >> 32 {
                MAGIC_PAD if low >= LINE && low % LINE == 0 && off + low <= cap => {
                    self.release(off, low);
                    continue;
                }
                MAGIC_MSG if off + round_up(WORD + low) <= cap => {
                    let total = round_up(WORD + low);
                    if total > LINE {
                        self.mem
                            .prefetch(off + LINE, (total - LINE).min(PREFETCH_LINES * LINE));
                    }
                    let (consume, r) = self.mem.read(off + WORD, low, f);
                    if consume {
                        self.release(off, total);
                    }
                    return Ok(Some(r));
                }
                _ => {
                    return Err(Corrupt {
                        word: w,
                        offset: off,
                    })
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A heap-backed ring for tests.
    struct HeapRing {
        _buf: Vec<u64>,
        ring: ShmRing,
    }
    fn heap_ring(cap: usize) -> HeapRing {
        let mut buf = vec![0u64; footprint(cap) / 8 + 8];
        let base = buf.as_mut_ptr() as usize;
        let aligned = (base + LINE - 1) & !(LINE - 1);
        // SAFETY: `aligned..aligned+footprint(cap)` lies inside `buf`, which outlives the
        // ring in each test and is zeroed.
        let ring = unsafe { ShmRing::from_raw(aligned as *mut u8, cap) };
        HeapRing { _buf: buf, ring }
    }

    fn push(p: &mut Producer<ShmRing>, data: &[u8]) -> bool {
        p.try_push(data.len(), &mut |b| b.copy_from_slice(data))
    }
    fn pop(c: &mut Consumer<ShmRing>) -> Option<Vec<u8>> {
        c.pop_with(|b| (true, b.to_vec())).unwrap()
    }

    #[test]
    fn fifo_and_full_ring_refuses_without_overwrite() {
        let h = heap_ring(1024);
        let mut p = Producer::new(h.ring);
        let mut c = Consumer::new(h.ring);
        assert!(c.is_empty());
        let mut n = 0u8;
        // 120-byte bodies take 128 bytes: 7 fit (one line stays free for the next record's
        // word, zeroed ahead of it).
        while push(&mut p, &[n; 120]) {
            n += 1;
        }
        assert_eq!(n, 7);
        for i in 0..7 {
            assert_eq!(pop(&mut c).unwrap(), vec![i; 120]);
        }
        assert_eq!(pop(&mut c), None);
        // The consumer never wrote into the data area; stale payload at the next head
        // position was zeroed by the producer: garbage bodies cannot look like records.
        for round in 0..50u8 {
            assert!(push(&mut p, &[0x7C; 120]), "round {round}");
            assert_eq!(pop(&mut c).unwrap(), vec![0x7C; 120]);
            assert_eq!(pop(&mut c), None);
        }
    }

    #[test]
    fn wraps_with_pad_records_and_zero_length_bodies() {
        let h = heap_ring(1024);
        let mut p = Producer::new(h.ring);
        let mut c = Consumer::new(h.ring);
        let mut expect = std::collections::VecDeque::new();
        let mut seq = 0u32;
        for round in 0..2000usize {
            let len = (round * 37) % (max_body(1024) + 1);
            let data: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
            if push(&mut p, &data) {
                expect.push_back(data);
                seq += 1;
            }
            if round % 3 == 0 {
                if let Some(got) = pop(&mut c) {
                    assert_eq!(got, expect.pop_front().unwrap());
                }
            }
        }
        while let Some(got) = pop(&mut c) {
            assert_eq!(got, expect.pop_front().unwrap());
        }
        assert!(expect.is_empty());
    }

    #[test]
    fn declined_record_stays_at_head() {
        let h = heap_ring(1024);
        let mut p = Producer::new(h.ring);
        let mut c = Consumer::new(h.ring);
        assert!(push(&mut p, b"abc"));
        assert_eq!(c.pop_with(|b| (false, b.len())).unwrap(), Some(3));
        assert_eq!(pop(&mut c).unwrap(), b"abc");
    }

    #[test]
    fn corrupt_word_is_reported() {
        let h = heap_ring(1024);
        h.ring.word_store(0, 0xdead_beef, Ordering::Relaxed);
        let mut c = Consumer::new(h.ring);
        assert_eq!(
            c.pop_with(|_| (true, ())).unwrap_err(),
            Corrupt {
                word: 0xdead_beef,
                offset: 0
            }
        );
    }

    #[test]
    fn threads_transfer_every_byte() {
        let h = heap_ring(4096);
        let ring = h.ring;
        const N: u32 = 50_000;
        let prod = std::thread::spawn(move || {
            let mut p = Producer::new(ring);
            for i in 0..N {
                let len = (i % 200) as usize;
                let data: Vec<u8> = (0..len).map(|k| (k as u32).wrapping_add(i) as u8).collect();
                while !push(&mut p, &data) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut c = Consumer::new(ring);
        let mut i = 0;
        while i < N {
            if let Some(got) = pop(&mut c) {
                let len = (i % 200) as usize;
                let want: Vec<u8> = (0..len).map(|k| (k as u32).wrapping_add(i) as u8).collect();
                assert_eq!(got, want, "message {i}");
                i += 1;
            }
        }
        prod.join().unwrap();
        assert!(c.is_empty());
    }

    /// A bounds-checked ring memory for the corruption property: every access indexes a
    /// `Vec`, so an out-of-bounds read or write by the ring code panics the test instead of
    /// touching foreign memory.
    #[derive(Clone)]
    struct CheckedMem(std::sync::Arc<(AtomicU64, Vec<AtomicU64>)>);

    impl CheckedMem {
        fn new(cap: usize) -> CheckedMem {
            CheckedMem(std::sync::Arc::new((
                AtomicU64::new(0),
                (0..cap / 8).map(|_| AtomicU64::new(0)).collect(),
            )))
        }
    }

    // SAFETY: the memory is owned by the Arc, `cap` bytes of 8-byte words, and every access
    // is bounds-checked (a violation panics instead of being undefined behaviour).
    unsafe impl RingMem for CheckedMem {
        fn cap(&self) -> usize {
            self.0 .1.len() * 8
        }
        fn head_load(&self, o: Ordering) -> u64 {
            self.0 .0.load(o)
        }
        fn head_store(&self, v: u64, o: Ordering) {
            self.0 .0.store(v, o)
        }
        fn word_load(&self, off: usize, o: Ordering) -> u64 {
            assert_eq!(off % 8, 0, "unaligned word load at {off}");
            self.0 .1[off / 8].load(o)
        }
        fn word_store(&self, off: usize, v: u64, o: Ordering) {
            assert_eq!(off % 8, 0, "unaligned word store at {off}");
            self.0 .1[off / 8].store(v, o)
        }
        fn fill(&self, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8])) {
            assert!(
                off + len <= self.cap(),
                "fill {off}+{len} past {}",
                self.cap()
            );
            let mut tmp: Vec<u8> = self.0 .1[off / 8..(off + len).div_ceil(8)]
                .iter()
                .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
                .collect();
            let skip = off % 8;
            f(&mut tmp[skip..skip + len]);
            for (i, ch) in tmp.chunks(8).enumerate() {
                let w = u64::from_le_bytes(ch.try_into().unwrap());
                self.0 .1[off / 8 + i].store(w, Ordering::Relaxed);
            }
        }
        fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
            assert!(
                off + len <= self.cap(),
                "read {off}+{len} past {}",
                self.cap()
            );
            let tmp: Vec<u8> = self.0 .1[off / 8..(off + len).div_ceil(8)]
                .iter()
                .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
                .collect();
            let skip = off % 8;
            f(&tmp[skip..skip + len])
        }
    }

    /// A record word the corruption may plant: a random word, or a message/pad word with a
    /// random length (the interesting cases for the bounds checks).
    fn planted_word() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u64>(),
            any::<u32>().prop_map(|l| MAGIC_MSG << 32 | l as u64),
            any::<u32>().prop_map(|l| MAGIC_PAD << 32 | l as u64),
            (0u64..4096).prop_map(|l| MAGIC_MSG << 32 | l),
            (0u64..4096).prop_map(|l| MAGIC_PAD << 32 | l),
            Just(0u64),
        ]
    }

    proptest::proptest! {
        /// Corrupted ring contents (any words, anywhere, after any history) make `pop_with`
        /// return `Err(Corrupt)`, `Ok(None)` or records lying inside the ring: it never
        /// panics, reads out of bounds or loops forever.
        #[test]
        fn corrupted_rings_are_reported_never_misread(
            cap_shift in 8u32..=12,
            history in proptest::collection::vec(0usize..300, 0..40),
            pokes in proptest::collection::vec((0usize..4096, planted_word()), 1..16),
            bytes in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..32),
        ) {
            let cap = 1usize << cap_shift;
            let mem = CheckedMem::new(cap);
            let mut p = Producer::new(mem.clone());
            let mut c = Consumer::new(mem.clone());
            // Some valid traffic first, so that head and tail are anywhere in the ring.
            for (i, len) in history.iter().enumerate() {
                let len = len % (max_body(cap) + 1);
                let _ = p.try_push(len, &mut |b| b.fill(i as u8));
                if i % 2 == 0 {
                    let _ = c.pop_with(|b| (true, b.len()));
                }
            }
            for (off, w) in pokes {
                mem.word_store((off % cap) & !7, w, Ordering::Relaxed);
            }
            for (off, b) in bytes {
                let off = off % cap;
                mem.fill(off, 1, &mut |s| s[0] = b);
            }
            // At most one record or pad per line can be consumed before the ring is empty.
            let mut done = false;
            for _ in 0..(cap / LINE + 2) {
                match c.pop_with(|b| (true, b.len())) {
                    Ok(Some(len)) => proptest::prop_assert!(len + WORD <= cap, "record of {} bytes in a {}-byte ring", len, cap),
                    Ok(None) | Err(Corrupt { .. }) => { done = true; break; }
                }
            }
            proptest::prop_assert!(done, "pop_with kept returning records");
        }
    }
}

/// Loom model of the ring protocol: every word is a loom atomic, payload words are written
/// and read `Relaxed`, so a missing `Release`/`Acquire` would let loom produce stale payload.
/// Run with `RUSTFLAGS="--cfg loom" cargo test -p tocsin --lib --release ring::loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicU64;
    use loom::sync::Arc;

    struct LoomMem {
        head: AtomicU64,
        words: Vec<AtomicU64>,
    }
    #[derive(Clone)]
    struct M(Arc<LoomMem>);

    // SAFETY: the memory is owned by the Arc and has `cap` bytes of words.
    unsafe impl RingMem for M {
        fn cap(&self) -> usize {
            self.0.words.len() * 8
        }
        fn head_load(&self, o: Ordering) -> u64 {
            self.0.head.load(o)
        }
        fn head_store(&self, v: u64, o: Ordering) {
            self.0.head.store(v, o)
        }
        fn word_load(&self, off: usize, o: Ordering) -> u64 {
            self.0.words[off / 8].load(o)
        }
        fn word_store(&self, off: usize, v: u64, o: Ordering) {
            self.0.words[off / 8].store(v, o)
        }
        fn fill(&self, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8])) {
            let mut tmp = vec![0u8; len.div_ceil(8) * 8];
            f(&mut tmp[..len]);
            for (i, ch) in tmp.chunks(8).enumerate() {
                let w = u64::from_le_bytes(ch.try_into().unwrap());
                self.0.words[off / 8 + i].store(w, Ordering::Relaxed);
            }
        }
        fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
            let mut tmp = Vec::with_capacity(len.div_ceil(8) * 8);
            for i in 0..len.div_ceil(8) {
                tmp.extend_from_slice(
                    &self.0.words[off / 8 + i]
                        .load(Ordering::Relaxed)
                        .to_le_bytes(),
                );
            }
            f(&tmp[..len])
        }
    }

    #[test]
    fn loom_publication_and_reuse() {
        loom::model(|| {
            // 4 lines: a 56-byte body takes one line; 3 messages force reuse of space.
            let mem = M(Arc::new(LoomMem {
                head: AtomicU64::new(0),
                words: (0..32).map(|_| AtomicU64::new(0)).collect(),
            }));
            let pm = mem.clone();
            let t = loom::thread::spawn(move || {
                let mut p = Producer::new(pm);
                for i in 0..3u8 {
                    while !p.try_push(56, &mut |b| b.fill(i + 1)) {
                        loom::thread::yield_now();
                    }
                }
            });
            let mut c = Consumer::new(mem);
            let mut got = 0u8;
            while got < 3 {
                match c.pop_with(|b| (true, b.to_vec())).unwrap() {
                    Some(v) => {
                        assert_eq!(v, vec![got + 1; 56]);
                        got += 1;
                    }
                    None => loom::thread::yield_now(),
                }
            }
            t.join().unwrap();
        });
    }
}
