//! Context ids: which contexts of the match key each communicator owns, agreed by its
//! members when it is created (MPICH's mask algorithm: an allreduce-AND of every member's
//! free-slot mask picks the lowest slot free everywhere).
//!
//! Owns the process's [`ContextIds`] table. A slot `s` gives the communicator two contexts:
//! `2s` for point-to-point traffic and `2s + 1` for its collectives, so messages of two
//! communicators, or of a collective and a user receive, never match each other. Slot 0 is
//! the world's, slot 1 the self communicator's (the C layer's MPI_COMM_SELF).

/// Slots per process (each two contexts of the 16-bit context field of the wire header).
pub const SLOTS: usize = 4096;
/// Words of a slot mask.
pub(crate) const WORDS: usize = SLOTS / 64;

/// Free slots of this process: bit set = free.
#[derive(Debug)]
pub(crate) struct ContextIds {
    free: [u64; WORDS],
}

impl ContextIds {
    /// All free but slot 0 (world) and slot 1 (self).
    pub(crate) fn new() -> ContextIds {
        let mut free = [u64::MAX; WORDS];
        free[0] &= !0b11;
        ContextIds { free }
    }

    /// The current mask (to AND with the other members').
    pub(crate) fn mask(&self) -> [u64; WORDS] {
        self.free
    }

    /// Takes `slot` if it is still free here.
    pub(crate) fn take(&mut self, slot: usize) -> bool {
        let (w, b) = (slot / 64, slot % 64);
        let ok = self.free[w] >> b & 1 == 1;
        self.free[w] &= !(1 << b);
        ok
    }

    /// Gives `slot` back.
    pub(crate) fn release(&mut self, slot: usize) {
        if slot > 1 && slot < SLOTS {
            self.free[slot / 64] |= 1 << (slot % 64);
        }
    }
}

/// The lowest slot set in `mask`.
pub(crate) fn lowest(mask: &[u64; WORDS]) -> Option<usize> {
    mask.iter()
        .enumerate()
        .find(|(_, &w)| w != 0)
        .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_release_lowest() {
        let mut c = ContextIds::new();
        assert_eq!(lowest(&c.mask()), Some(2));
        assert!(c.take(2));
        assert!(!c.take(2));
        assert_eq!(lowest(&c.mask()), Some(3));
        c.release(2);
        assert_eq!(lowest(&c.mask()), Some(2));
        c.release(0);
        assert_eq!(lowest(&c.mask()), Some(2), "world's slot is never released");
    }
}
