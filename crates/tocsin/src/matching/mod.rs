//! Message matching: the posted-receive queue and the unexpected-message queue.
//!
//! Owns the MPI matching rules, sans I/O: an incoming envelope (source, tag, context) takes
//! the *oldest* posted receive whose pattern matches it (wildcards [`ANY_SOURCE`],
//! [`ANY_TAG`]); a new receive takes the *oldest* unexpected message it matches. Together
//! with per-pair FIFO delivery this gives MPI's non-overtaking order. It stores opaque
//! items and never touches buffers or drivers.
//!
//! Both queues are `VecDeque`s reserved at start-up; [`Queue::has_room`] lets a caller that
//! must not allocate (a handler) leave a message in its ring instead of growing the queue.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::VecDeque;

use crate::{Rank, Tag, ANY_SOURCE, ANY_TAG};

/// Who sent a message, with which tag, on which context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// Sending rank.
    pub source: Rank,
    /// Tag (never a wildcard).
    pub tag: Tag,
    /// Communicator context.
    pub ctx: u16,
}

/// What a receive accepts: a source or [`ANY_SOURCE`], a tag or [`ANY_TAG`], a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// Source rank or [`ANY_SOURCE`].
    pub source: Rank,
    /// Tag or [`ANY_TAG`].
    pub tag: Tag,
    /// Communicator context (never a wildcard).
    pub ctx: u16,
}

impl Pattern {
    /// `true` if a message with envelope `e` may be received by this pattern.
    #[inline]
    pub fn matches(&self, e: &Envelope) -> bool {
        self.ctx == e.ctx
            && (self.source == ANY_SOURCE || self.source == e.source)
            && (self.tag == ANY_TAG || self.tag == e.tag)
    }
}

/// A FIFO of keyed items searched oldest first.
#[derive(Debug)]
pub struct Queue<K, T> {
    items: VecDeque<(K, T)>,
}

impl<K: Copy, T> Queue<K, T> {
    /// An empty queue with room for `cap` items before it allocates.
    pub fn with_capacity(cap: usize) -> Self {
        Queue {
            items: VecDeque::with_capacity(cap),
        }
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// `true` if empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// `true` if one more item can be pushed without allocating.
    pub fn has_room(&self) -> bool {
        self.items.len() < self.items.capacity()
    }
    /// Items that can still be pushed without allocating.
    pub fn spare(&self) -> usize {
        self.items.capacity() - self.items.len()
    }
    /// Reserves room for `n` more items (allocates).
    pub fn reserve(&mut self, n: usize) {
        self.items.reserve(n);
    }
    /// Appends an item (newest).
    pub fn push(&mut self, key: K, item: T) {
        self.items.push_back((key, item));
    }
    /// Removes and returns the oldest item for which `pred(key, item)` holds.
    #[inline]
    pub fn take_first(&mut self, mut pred: impl FnMut(&K, &T) -> bool) -> Option<(K, T)> {
        let i = self.items.iter().position(|(k, t)| pred(k, t))?;
        // The common case (the oldest matches: in-order traffic) without `remove`'s
        // general shifting.
        if i == 0 {
            return self.items.pop_front();
        }
        self.items.remove(i)
    }
    /// The oldest item for which `pred` holds, left in place.
    pub fn find_first(&self, mut pred: impl FnMut(&K, &T) -> bool) -> Option<&(K, T)> {
        self.items.iter().find(|(k, t)| pred(k, t))
    }
    /// Removes every item for which `pred` holds, oldest first, calling `f` on each.
    pub fn drain_where(&mut self, mut pred: impl FnMut(&K, &T) -> bool, mut f: impl FnMut(K, T)) {
        let mut i = 0;
        while i < self.items.len() {
            let (k, t) = &self.items[i];
            if pred(k, t) {
                if let Some((k, t)) = self.items.remove(i) {
                    f(k, t);
                }
            } else {
                i += 1;
            }
        }
    }
}

/// Posted receives, keyed by their [`Pattern`].
pub type PostedQueue<T> = Queue<Pattern, T>;
/// Unexpected messages, keyed by their [`Envelope`].
pub type UnexpectedQueue<T> = Queue<Envelope, T>;

impl<T> PostedQueue<T> {
    /// Removes the oldest posted receive that accepts envelope `e`.
    #[inline]
    pub fn take_match(&mut self, e: &Envelope) -> Option<(Pattern, T)> {
        self.take_first(|p, _| p.matches(e))
    }
}

impl<T> UnexpectedQueue<T> {
    /// Removes the oldest unexpected message accepted by pattern `p`.
    #[inline]
    pub fn take_match(&mut self, p: &Pattern) -> Option<(Envelope, T)> {
        self.take_first(|e, _| p.matches(e))
    }
    /// The oldest unexpected message accepted by `p`, left queued (for probe).
    pub fn peek_match(&self, p: &Pattern) -> Option<&(Envelope, T)> {
        self.find_first(|e, _| p.matches(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(source: Rank, tag: Tag) -> Envelope {
        Envelope {
            source,
            tag,
            ctx: 0,
        }
    }
    fn pat(source: Rank, tag: Tag) -> Pattern {
        Pattern {
            source,
            tag,
            ctx: 0,
        }
    }

    #[test]
    fn wildcards_and_contexts() {
        assert!(pat(ANY_SOURCE, ANY_TAG).matches(&env(3, 9)));
        assert!(pat(3, ANY_TAG).matches(&env(3, 9)));
        assert!(!pat(2, ANY_TAG).matches(&env(3, 9)));
        assert!(pat(ANY_SOURCE, 9).matches(&env(3, 9)));
        assert!(!pat(ANY_SOURCE, 8).matches(&env(3, 9)));
        let mut p = pat(ANY_SOURCE, ANY_TAG);
        p.ctx = 1;
        assert!(!p.matches(&env(3, 9)), "contexts never match across");
    }

    #[test]
    fn oldest_posted_receive_wins() {
        let mut q = PostedQueue::with_capacity(4);
        q.push(pat(1, 5), "a");
        q.push(pat(ANY_SOURCE, ANY_TAG), "b");
        q.push(pat(1, 5), "c");
        assert_eq!(q.take_match(&env(1, 5)).unwrap().1, "a");
        assert_eq!(q.take_match(&env(1, 5)).unwrap().1, "b");
        assert_eq!(q.take_match(&env(1, 5)).unwrap().1, "c");
        assert!(q.take_match(&env(1, 5)).is_none());
    }

    #[test]
    fn unexpected_in_arrival_order_per_pattern() {
        let mut q = UnexpectedQueue::with_capacity(4);
        q.push(env(0, 1), 10);
        q.push(env(1, 2), 20);
        q.push(env(0, 2), 30);
        q.push(env(0, 1), 40);
        assert_eq!(q.peek_match(&pat(0, ANY_TAG)).unwrap().1, 10);
        assert_eq!(q.take_match(&pat(ANY_SOURCE, 2)).unwrap().1, 20);
        assert_eq!(q.take_match(&pat(0, 1)).unwrap().1, 10);
        assert_eq!(q.take_match(&pat(0, 1)).unwrap().1, 40);
        assert_eq!(q.len(), 1);
        let mut seen = vec![];
        q.drain_where(|e, _| e.source == 0, |_, v| seen.push(v));
        assert_eq!(seen, vec![30]);
        assert!(q.is_empty());
    }
}
