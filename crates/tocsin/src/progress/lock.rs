//! The engine lock: a test-and-set spin lock with a non-blocking `try_lock`.
//!
//! Owns only mutual exclusion of the protocol state. `try_lock` never waits, so a progress
//! call that finds the lock taken simply returns (the holder is making progress anyway);
//! this is what will let a signal or interrupt handler attempt progress without deadlocking
//! on a lock held by the code it interrupted.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A spin lock around `T`.
pub(crate) struct SpinLock<T> {
    held: AtomicBool,
    val: UnsafeCell<T>,
}

// SAFETY: access to `val` is serialized by `held` (Acquire on lock, Release on unlock).
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

/// Proof of holding a [`SpinLock`].
pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    pub(crate) fn new(v: T) -> Self {
        SpinLock {
            held: AtomicBool::new(false),
            val: UnsafeCell::new(v),
        }
    }

    /// Takes the lock if it is free; never waits.
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        if !self.held.load(Ordering::Relaxed)
            && self
                .held
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            Some(Guard { lock: self })
        } else {
            None
        }
    }

    /// `true` while some thread holds the lock (`SeqCst`, for the pending-pass handshake).
    pub(crate) fn is_locked(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Takes the lock, spinning (then yielding the CPU) while another thread holds it.
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        let mut spins = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.lock.val.get() }
    }
}
impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.lock.val.get() }
    }
}
impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // SeqCst: pairs with the `pending` handshake in the engine (a release followed by a
        // SeqCst load of `pending` must not be reordered before it).
        self.lock.held.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_and_counts() {
        let l = Arc::new(SpinLock::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *l.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.lock(), 40_000);
        let g = l.try_lock().unwrap();
        assert!(l.try_lock().is_none());
        drop(g);
        assert!(l.try_lock().is_some());
    }
}
