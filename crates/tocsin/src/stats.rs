//! Per-rank counters of the notification machinery: interrupts sent and received, handler
//! runs and the records they handled, interrupts coalesced or suppressed, doorbells rung,
//! sleeps. They say whether work was really done by interrupt handlers (the kernel's
//! `/proc/interrupts` cannot tell: user interrupts delivered directly are not counted there).
//!
//! Counters are process-wide (one rank per process), reset when a communicator is created,
//! updated with relaxed atomic increments (async-signal-safe, never blocking, never
//! panicking) in every progress mode, read with [`stats`] or [`crate::Comm::stats`], and
//! printed on standard error at the end of a run when `TOCSIN_STATS=1`.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter (index into the table).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    InterruptsSent,
    InterruptsCoalesced,
    InterruptsReceived,
    HandlerRuns,
    HandlerRecords,
    InterruptsSuppressed,
    Doorbells,
    Sleeps,
}

const N: usize = 8;
static COUNTERS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Adds one to `c`. Async-signal-safe.
#[inline]
pub(crate) fn bump(c: Counter) {
    COUNTERS[c as usize].fetch_add(1, Ordering::Relaxed);
}

/// Sets every counter to zero (at communicator creation).
pub(crate) fn reset() {
    for c in &COUNTERS {
        c.store(0, Ordering::Relaxed);
    }
}

/// A snapshot of this rank's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Interrupts sent to peers (real-time signals queued or `SENDUIPI`s issued).
    pub interrupts_sent: u64,
    /// Interrupts not sent because one was already pending at that peer (coalesced).
    pub interrupts_coalesced: u64,
    /// Interrupt handler entries in this rank (signal or user interrupt) that reached the
    /// communicator.
    pub interrupts_received: u64,
    /// Handler entries that ran (or requested) a progress pass.
    pub handler_runs: u64,
    /// Records taken from the rings by passes that ran inside a handler.
    pub handler_records: u64,
    /// Handler entries that did nothing because handlers were suppressed (a record could
    /// not be stored without allocating; the next ordinary pass takes over).
    pub interrupts_suppressed: u64,
    /// Futex doorbells rung (to a sleeping peer, or to this rank's own sleepers).
    pub doorbells: u64,
    /// Times a thread of this rank went to sleep on its doorbell.
    pub sleeps: u64,
}

/// This rank's counters now.
pub fn stats() -> Stats {
    let g = |c: Counter| COUNTERS[c as usize].load(Ordering::Relaxed);
    Stats {
        interrupts_sent: g(Counter::InterruptsSent),
        interrupts_coalesced: g(Counter::InterruptsCoalesced),
        interrupts_received: g(Counter::InterruptsReceived),
        handler_runs: g(Counter::HandlerRuns),
        handler_records: g(Counter::HandlerRecords),
        interrupts_suppressed: g(Counter::InterruptsSuppressed),
        doorbells: g(Counter::Doorbells),
        sleeps: g(Counter::Sleeps),
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupts_sent={} interrupts_coalesced={} interrupts_received={} handler_runs={} \
             handler_records={} interrupts_suppressed={} doorbells={} sleeps={}",
            self.interrupts_sent,
            self.interrupts_coalesced,
            self.interrupts_received,
            self.handler_runs,
            self.handler_records,
            self.interrupts_suppressed,
            self.doorbells,
            self.sleeps
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_print() {
        // Other tests of this binary may count too: compare differences only.
        let before = stats();
        bump(Counter::HandlerRecords);
        bump(Counter::HandlerRecords);
        bump(Counter::Sleeps);
        let after = stats();
        assert!(after.handler_records >= before.handler_records + 2);
        assert!(after.sleeps > before.sleeps);
        let s = after.to_string();
        assert!(
            s.contains("handler_records=") && s.contains("sleeps="),
            "{s}"
        );
    }
}
