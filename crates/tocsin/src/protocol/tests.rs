//! Sans-I/O tests: two cores joined by an in-memory driver; CMA is a plain memcpy since both
//! "ranks" live in this process.

use super::*;
use std::collections::VecDeque;

struct Mock {
    outbox: VecDeque<Vec<u8>>,
    cap: usize,
    cma: bool,
    cma_calls: usize,
}

impl Driver for Mock {
    fn try_push(&mut self, _peer: Rank, hdr: &Header, payload: &[u8]) -> bool {
        if self.outbox.len() >= self.cap {
            return false;
        }
        let mut v = vec![0u8; hdr.encoded_len() + payload.len()];
        let n = hdr.encode(&mut v);
        v[n..].copy_from_slice(payload);
        self.outbox.push_back(v);
        true
    }
    fn max_record(&self, _peer: Rank) -> usize {
        4096
    }
    fn cma_read(&mut self, _p: Rank, remote: u64, local: &mut [u8]) -> std::io::Result<()> {
        if !self.cma {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
        self.cma_calls += 1;
        // SAFETY: in these tests `remote` is a live buffer of this process of that length.
        unsafe {
            std::ptr::copy_nonoverlapping(remote as *const u8, local.as_mut_ptr(), local.len())
        };
        Ok(())
    }
    fn cma_write(&mut self, _p: Rank, remote: u64, local: &[u8]) -> std::io::Result<()> {
        if !self.cma {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
        self.cma_calls += 1;
        // SAFETY: as in `cma_read`.
        unsafe { std::ptr::copy_nonoverlapping(local.as_ptr(), remote as *mut u8, local.len()) };
        Ok(())
    }
}

struct Pair {
    c: [Core; 2],
    d: [Mock; 2],
}

impl Pair {
    fn new(eager: usize, cma_cfg: bool, cma_works: bool, ring_records: usize) -> Pair {
        let mk = |me| {
            Core::new(CoreConfig {
                me,
                size: 2,
                eager_threshold: eager,
                chunk: 1000,
                cma: cma_cfg,
                queue_capacity: 8,
            })
        };
        let md = || Mock {
            outbox: VecDeque::new(),
            cap: ring_records,
            cma: cma_works,
            cma_calls: 0,
        };
        Pair {
            c: [mk(0), mk(1)],
            d: [md(), md()],
        }
    }
    /// Delivers queued records both ways until quiet; returns records delivered.
    fn pump(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut moved = false;
            for from in 0..2 {
                let to = 1 - from;
                // deliver at most one record per direction per pass, then let senders refill
                if let Some(rec) = self.d[from].outbox.pop_front() {
                    let (cs, ds) = (&mut self.c, &mut self.d);
                    assert_eq!(
                        cs[to].on_record(&mut ds[to], from as Rank, &rec).unwrap(),
                        Taken::Consumed
                    );
                    moved = true;
                    n += 1;
                }
                let (cs, ds) = (&mut self.c, &mut self.d);
                cs[from].flush_all(&mut ds[from]);
            }
            if !moved {
                return n;
            }
        }
    }
    fn send(&mut self, from: usize, buf: &[u8], tag: Tag) -> Arc<ReqShared> {
        let (cs, ds) = (&mut self.c, &mut self.d);
        cs[from].post_send(
            &mut ds[from],
            buf.as_ptr(),
            buf.len(),
            (1 - from) as Rank,
            tag,
            0,
        )
    }
    fn recv(&mut self, to: usize, buf: &mut [u8], src: Rank, tag: Tag) -> Arc<ReqShared> {
        let (cs, ds) = (&mut self.c, &mut self.d);
        cs[to].post_recv(&mut ds[to], buf.as_mut_ptr(), buf.len(), src, tag, 0)
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn eager_expected_and_unexpected() {
    let mut p = Pair::new(64, true, true, 16);
    let a = pattern(10, 1);
    let mut b = vec![0u8; 10];
    let r = p.recv(1, &mut b, 0, 5);
    let s = p.send(0, &a, 5);
    assert!(s.is_complete(), "eager send completes once in the ring");
    p.pump();
    let (st, fail) = r.outcome().unwrap();
    assert_eq!(
        (st, fail),
        (
            Status {
                source: 0,
                tag: 5,
                len: 10
            },
            None
        )
    );
    assert_eq!(a, b);

    // unexpected: send first, then receive
    let a2 = pattern(7, 2);
    p.send(0, &a2, 6);
    p.pump();
    assert_eq!(p.c[1].iprobe(0, 6, 0).unwrap().len, 7);
    let mut b2 = vec![0u8; 7];
    let r2 = p.recv(1, &mut b2, ANY_SOURCE, -1);
    assert_eq!(r2.outcome().unwrap().0.tag, 6);
    assert_eq!(a2, b2);
    assert_eq!(p.c[0].live_requests() + p.c[1].live_requests(), 0);
}

fn rendezvous(cma_cfg: bool, cma_works: bool, receiver_waiting: bool, recv_first: bool) {
    let mut p = Pair::new(64, cma_cfg, cma_works, 4);
    p.c[1].receiver_waiting = receiver_waiting;
    let a = pattern(10_003, 3);
    let mut b = vec![0u8; 10_003];
    let (s, r);
    if recv_first {
        r = p.recv(1, &mut b, 0, 9);
        s = p.send(0, &a, 9);
    } else {
        s = p.send(0, &a, 9);
        p.pump();
        r = p.recv(1, &mut b, 0, 9);
    }
    assert!(!s.is_complete());
    p.pump();
    assert!(s.is_complete() && r.is_complete());
    assert_eq!(
        s.outcome().unwrap(),
        (
            Status {
                source: 0,
                tag: 9,
                len: 10_003
            },
            None
        )
    );
    assert_eq!(
        r.outcome().unwrap(),
        (
            Status {
                source: 0,
                tag: 9,
                len: 10_003
            },
            None
        )
    );
    assert!(a == b, "payload differs");
    let cma_used = p.d[0].cma_calls + p.d[1].cma_calls;
    assert_eq!(cma_used, usize::from(cma_cfg && cma_works));
    if cma_cfg && cma_works {
        // the waiting receiver reads; otherwise the sender writes
        assert_eq!(p.d[1].cma_calls, usize::from(receiver_waiting));
    }
    assert_eq!(p.c[0].live_requests() + p.c[1].live_requests(), 0);
}

#[test]
fn rendezvous_receiver_reads_with_cma() {
    rendezvous(true, true, true, true);
    rendezvous(true, true, true, false);
}
#[test]
fn rendezvous_sender_writes_with_cma() {
    rendezvous(true, true, false, true);
    rendezvous(true, true, false, false);
}
#[test]
fn rendezvous_pipelined_without_cma() {
    rendezvous(false, false, true, true);
    rendezvous(false, false, false, false);
}
#[test]
fn rendezvous_falls_back_when_cma_is_refused() {
    // CMA enabled but EPERM: both the read and the write path must fall back to DATA chunks
    rendezvous(true, false, true, true);
    rendezvous(true, false, false, true);
}

#[test]
fn truncation_on_every_path_and_later_messages_arrive() {
    for (eager, cma, waiting) in [
        (1 << 20, true, true),
        (64, true, true),
        (64, true, false),
        (64, false, false),
    ] {
        let mut p = Pair::new(eager, cma, cma, 4);
        p.c[1].receiver_waiting = waiting;
        let a = pattern(5000, 4);
        let mut b = vec![0u8; 3000];
        let r = p.recv(1, &mut b, 0, 1);
        let s = p.send(0, &a, 1);
        p.pump();
        let (st, fail) = r.outcome().unwrap();
        assert_eq!(st.len, 3000);
        assert_eq!(
            fail,
            Some(Fail::Truncated {
                message_len: 5000,
                buffer_len: 3000
            })
        );
        assert_eq!(&a[..3000], &b[..]);
        assert_eq!(s.outcome().unwrap().1, None, "the sender is not at fault");
        // a later message still arrives
        let a2 = pattern(100, 5);
        let mut b2 = vec![0u8; 100];
        let r2 = p.recv(1, &mut b2, 0, 2);
        p.send(0, &a2, 2);
        p.pump();
        assert_eq!(r2.outcome().unwrap().1, None);
        assert_eq!(a2, b2);
    }
}

#[test]
fn full_ring_queues_in_order_and_wildcards_keep_order() {
    let mut p = Pair::new(64, true, true, 2);
    let msgs: Vec<Vec<u8>> = (0..20).map(|i| pattern(i * 3, i as u8)).collect();
    let reqs: Vec<_> = msgs.iter().map(|m| p.send(0, m, 3)).collect();
    assert!(
        !reqs[10].is_complete(),
        "ring of 2 records: the rest waits in the send queue"
    );
    p.pump();
    assert!(reqs.iter().all(|r| r.is_complete()));
    for m in &msgs {
        let mut b = vec![0u8; 64];
        let r = p.recv(1, &mut b, ANY_SOURCE, -1);
        let (st, _) = r.outcome().unwrap();
        assert_eq!(&b[..st.len], &m[..], "non-overtaking order");
    }
}

#[test]
fn self_send_eager_and_large() {
    let mut p = Pair::new(64, true, true, 4);
    let a = pattern(40, 6);
    let (cs, ds) = (&mut p.c, &mut p.d);
    let s = cs[0].post_send(&mut ds[0], a.as_ptr(), a.len(), 0, 1, 0);
    assert!(
        s.is_complete(),
        "eager self-send completes before the receive"
    );
    let big = pattern(1000, 7);
    let s2 = cs[0].post_send(&mut ds[0], big.as_ptr(), big.len(), 0, 2, 0);
    assert!(!s2.is_complete(), "large self-send waits for its receive");
    let mut b2 = vec![0u8; 1000];
    let r2 = cs[0].post_recv(&mut ds[0], b2.as_mut_ptr(), 1000, 0, 2, 0);
    assert!(s2.is_complete() && r2.is_complete());
    let mut b = vec![0u8; 40];
    let r = cs[0].post_recv(&mut ds[0], b.as_mut_ptr(), 40, 0, 1, 0);
    assert_eq!(
        r.outcome().unwrap().0,
        Status {
            source: 0,
            tag: 1,
            len: 40
        }
    );
    assert_eq!(a, b);
    assert_eq!(big, b2);
}

#[test]
fn dead_peer_fails_pending_requests() {
    let mut p = Pair::new(64, true, true, 4);
    let a = pattern(1000, 8);
    let s = p.send(0, &a, 1); // RTS, waits for CTS
    let mut b = vec![0u8; 8];
    let r = p.recv(0, &mut b, 1, 1);
    let mut b3 = vec![0u8; 8];
    let r3 = p.recv(0, &mut b3, ANY_SOURCE, 1);
    p.c[0].fail_peer(1);
    for q in [&s, &r, &r3] {
        assert_eq!(q.outcome().unwrap().1, Some(Fail::PeerDied { rank: 1 }));
    }
    let s2 = p.send(0, &a, 1);
    assert_eq!(s2.outcome().unwrap().1, Some(Fail::PeerDied { rank: 1 }));
}

#[test]
fn malformed_records_are_rejected() {
    let mut p = Pair::new(64, true, true, 4);
    let mut h = Header::new(Kind::Cts);
    h.sreq = 12345;
    let mut rec = vec![0u8; 48];
    h.encode(&mut rec);
    let (cs, ds) = (&mut p.c, &mut p.d);
    assert!(matches!(
        cs[0].on_record(&mut ds[0], 1, &rec),
        Err(Fail::Malformed { rank: 1, .. })
    ));
    assert!(cs[0].on_record(&mut ds[0], 1, &[7u8; 3]).is_err());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random sizes (eager and rendezvous), tags and post orders: every receive gets the
        /// bytes of the oldest matching send, whatever the interleaving.
        #[test]
        fn random_traffic_is_delivered_in_order(
            msgs in proptest::collection::vec((0usize..3000, 0i32..3), 1..25),
            recv_early in proptest::collection::vec(any::<bool>(), 25),
            cma in any::<bool>(), waiting in any::<bool>(), ring in 1usize..6,
        ) {
            let mut p = Pair::new(256, cma, cma, ring);
            p.c[1].receiver_waiting = waiting;
            let data: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(i, (n, _))| pattern(*n, i as u8)).collect();
            let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|_| vec![0u8; 3000]).collect();
            let mut rreqs = Vec::new();
            let mut sreqs = Vec::new();
            // receives for each tag in order; some posted before the sends
            let order: Vec<usize> = (0..msgs.len()).collect();
            let (early, late): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| recv_early[i]);
            let bufs_ptr: Vec<*mut u8> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
            for &i in &early {
                let (cs, ds) = (&mut p.c, &mut p.d);
                rreqs.push((i, cs[1].post_recv(&mut ds[1], bufs_ptr[i], 3000, 0, msgs[i].1, 0)));
            }
            for (i, d) in data.iter().enumerate() {
                sreqs.push(p.send(0, d, msgs[i].1));
                if i % 3 == 0 { p.pump(); }
            }
            for &i in &late {
                let (cs, ds) = (&mut p.c, &mut p.d);
                rreqs.push((i, cs[1].post_recv(&mut ds[1], bufs_ptr[i], 3000, 0, msgs[i].1, 0)));
            }
            p.pump();
            prop_assert!(sreqs.iter().all(|s| s.is_complete()));
            // per tag, the k-th posted receive gets the k-th sent message of that tag
            for tag in 0..3 {
                let sent: Vec<usize> = (0..msgs.len()).filter(|&i| msgs[i].1 == tag).collect();
                let recvd: Vec<usize> = rreqs.iter().filter(|(i, _)| msgs[*i].1 == tag).map(|(i, _)| *i).collect();
                prop_assert_eq!(sent.len(), recvd.len());
                for (s, r) in sent.iter().zip(&recvd) {
                    let rq = &rreqs.iter().find(|(i, _)| i == r).unwrap().1;
                    let (st, fail) = rq.outcome().unwrap();
                    prop_assert_eq!(fail, None);
                    prop_assert_eq!(st.len, data[*s].len());
                    prop_assert_eq!(&bufs[*r][..st.len], &data[*s][..]);
                }
            }
        }
    }
}

#[test]
fn no_alloc_mode_leaves_records_it_cannot_store() {
    let mut p = Pair::new(64, true, true, 100);
    // 70 unexpected eager messages: more than the 8 unexpected entries reserved
    let a = pattern(10, 9);
    for _ in 0..70 {
        p.send(0, &a, 1);
    }
    p.c[1].no_alloc = true;
    let mut consumed = 0;
    while let Some(rec) = p.d[0].outbox.front().cloned() {
        let (cs, ds) = (&mut p.c, &mut p.d);
        match cs[1].on_record(&mut ds[1], 0, &rec).unwrap() {
            Taken::Consumed => {
                consumed += 1;
                p.d[0].outbox.pop_front();
            }
            Taken::LeftInRing => break,
        }
    }
    assert_eq!(consumed, 8, "stops when the unexpected queue is full");
    p.c[1].no_alloc = false;
    assert_eq!(p.pump(), 62, "the rest is taken outside the handler");
    for _ in 0..70 {
        let mut b = vec![0u8; 10];
        let r = p.recv(1, &mut b, 0, 1);
        assert_eq!(r.outcome().unwrap().1, None);
        assert_eq!(a, b);
    }
}

#[test]
fn messages_of_a_dead_peer_already_received_stay_receivable() {
    let mut p = Pair::new(64, true, true, 8);
    let a = pattern(30, 3);
    p.send(1, &a, 4); // eager, arrives
    let big = pattern(500, 4);
    p.send(1, &big, 5); // RTS, arrives; its data dies with the peer
    p.pump();
    p.c[0].fail_peer(1);
    let mut b = vec![0u8; 30];
    let r = p.recv(0, &mut b, 1, 4);
    assert_eq!(
        r.outcome().unwrap(),
        (
            Status {
                source: 1,
                tag: 4,
                len: 30
            },
            None
        )
    );
    assert_eq!(a, b);
    let mut bb = vec![0u8; 500];
    let r2 = p.recv(0, &mut bb, 1, 5);
    assert_eq!(r2.outcome().unwrap().1, Some(Fail::PeerDied { rank: 1 }));
}

#[test]
fn handler_mode_takes_rendezvous_data_chunks() {
    // DATA chunks larger than the pooled eager buffers must still be consumed in a handler.
    let mut p = Pair::new(64, false, false, 4);
    let a = pattern(5000, 5);
    let mut b = vec![0u8; 5000];
    let r = p.recv(1, &mut b, 0, 1);
    p.c[1].no_alloc = true;
    p.send(0, &a, 1);
    p.pump();
    assert_eq!(r.outcome().unwrap().1, None);
    assert_eq!(a, b);
}

#[test]
fn eager_fast_path_keeps_order_behind_queued_messages() {
    let mut p = Pair::new(64, true, true, 1);
    let a = pattern(10, 1);
    let b = pattern(12, 2);
    let c = pattern(14, 3);
    {
        let (cs, ds) = (&mut p.c, &mut p.d);
        assert!(
            cs[0].try_send_eager_now(&mut ds[0], &a, 1, 0, 0),
            "empty ring: pushed"
        );
        assert!(
            !cs[0].try_send_eager_now(&mut ds[0], &b, 1, 0, 0),
            "full ring: refused"
        );
    }
    let q = p.send(0, &b, 0); // queued behind the full ring
    {
        let (cs, ds) = (&mut p.c, &mut p.d);
        assert!(
            !cs[0].try_send_eager_now(&mut ds[0], &c, 1, 0, 0),
            "must not overtake b"
        );
        assert!(
            !cs[0].try_send_eager_now(&mut ds[0], &[0u8; 65], 1, 0, 0),
            "not eager"
        );
    }
    let q2 = p.send(0, &c, 0);
    p.pump();
    assert!(q.is_complete() && q2.is_complete());
    for want in [&a, &b, &c] {
        let mut got = vec![0u8; 64];
        let r = p.recv(1, &mut got, 0, 0);
        let (st, _) = r.outcome().unwrap();
        assert_eq!(&got[..st.len], &want[..]);
    }
}

#[test]
fn cancel_takes_only_what_has_not_matched() {
    let mut p = Pair::new(64, true, true, 4);
    let mut b = vec![0u8; 16];
    let r = p.recv(1, &mut b, 0, 5);
    assert!(p.c[1].cancel(&r), "an unmatched receive is cancellable");
    assert_eq!(r.outcome().unwrap().1, Some(Fail::Cancelled));
    assert!(
        !p.c[1].cancel(&r),
        "a completed request is not cancelled twice"
    );
    // The message meant for it goes to the unexpected queue and a later receive gets it.
    let a = pattern(16, 1);
    let s = p.send(0, &a, 5);
    p.pump();
    assert!(s.is_complete());
    let mut b2 = vec![0u8; 16];
    let r2 = p.recv(1, &mut b2, 0, 5);
    assert_eq!(r2.outcome().unwrap().1, None);
    assert_eq!(a, b2);
    // A matched rendezvous receive is not cancelled.
    let big = pattern(1000, 2);
    let mut bb = vec![0u8; 1000];
    let rr = p.recv(1, &mut bb, 0, 6);
    let ss = p.send(0, &big, 6);
    p.pump();
    assert!(!p.c[1].cancel(&rr));
    assert!(rr.is_complete() && ss.is_complete());
    assert_eq!(big, bb);
    // A send whose record has not left (ring full) is cancellable; order is kept.
    let mut q = Pair::new(64, true, true, 1);
    let x = pattern(8, 3);
    let y = pattern(8, 4);
    let s1 = q.send(0, &x, 1);
    let s2 = q.send(0, &y, 1); // queued: the one-record ring is full
    assert!(s1.is_complete() && !s2.is_complete());
    assert!(q.c[0].cancel(&s2));
    assert_eq!(s2.outcome().unwrap().1, Some(Fail::Cancelled));
    q.pump();
    let mut got = vec![0u8; 8];
    let r = q.recv(1, &mut got, 0, 1);
    assert_eq!((r.outcome().unwrap().1, got), (None, x));
    assert_eq!(q.c[0].live_requests() + q.c[1].live_requests(), 0);
}

#[test]
fn a_finished_peer_fails_only_what_needed_it() {
    let mk = |me| {
        Core::new(CoreConfig {
            me,
            size: 3,
            eager_threshold: 64,
            chunk: 1000,
            cma: true,
            queue_capacity: 8,
        })
    };
    let mut c = mk(0);
    let mut d = Mock {
        outbox: VecDeque::new(),
        cap: 16,
        cma: true,
        cma_calls: 0,
    };
    let (mut b1, mut b2, mut b3) = (vec![0u8; 8], vec![0u8; 8], vec![0u8; 8]);
    let any = c.post_recv(&mut d, b1.as_mut_ptr(), 8, ANY_SOURCE, 1, 0);
    let from1 = c.post_recv(&mut d, b2.as_mut_ptr(), 8, 1, 1, 0);
    let from2 = c.post_recv(&mut d, b3.as_mut_ptr(), 8, 2, 1, 0);
    c.peer_gone(1, true);
    assert_eq!(from1.outcome().unwrap().1, Some(Fail::PeerDied { rank: 1 }));
    assert!(
        !any.is_complete(),
        "rank 2 may still send: ANY_SOURCE waits"
    );
    assert!(!from2.is_complete());
    c.peer_gone(2, false);
    assert_eq!(any.outcome().unwrap().1, Some(Fail::PeerDied { rank: 2 }));
    assert_eq!(from2.outcome().unwrap().1, Some(Fail::PeerDied { rank: 2 }));
    let mut b4 = vec![0u8; 8];
    let late = c.post_recv(&mut d, b4.as_mut_ptr(), 8, ANY_SOURCE, 1, 0);
    assert_eq!(late.outcome().unwrap().1, Some(Fail::PeerDied { rank: 2 }));
    assert!(c.all_others_gone());
}

#[test]
fn a_receive_offered_for_a_cma_write_is_exposed_until_fin() {
    let mut p = Pair::new(64, true, true, 4);
    p.c[1].receiver_waiting = false; // not waiting: answers CTS, the sender writes
    let a = pattern(1000, 5);
    let mut b = vec![0u8; 1000];
    let r = p.recv(1, &mut b, 0, 3);
    let s = p.send(0, &a, 3);
    // Deliver the RTS only: rank 1 answers with a CTS carrying its buffer address.
    let rts = p.d[0].outbox.pop_front().unwrap();
    let (cs, ds) = (&mut p.c, &mut p.d);
    cs[1].on_record(&mut ds[1], 0, &rts).unwrap();
    assert!(
        p.c[1].exposed_to(0),
        "CTS sent: rank 0 may write into the buffer"
    );
    p.pump();
    assert!(r.is_complete() && s.is_complete());
    assert!(!p.c[1].exposed_to(0));
    assert_eq!(a, b);
}

/// What [`blocking_rendezvous`] did: both requests, the bytes sent and received, and the
/// CMA calls each side made.
type Rendezvous = (Arc<ReqShared>, Arc<ReqShared>, Vec<u8>, Vec<u8>, [usize; 2]);

/// One rendezvous of `n` bytes from a blocking send (0 → 1) to a waiting receive, posted
/// first or after the RTS.
fn blocking_rendezvous(p: &mut Pair, n: usize, seed: u8, recv_first: bool) -> Rendezvous {
    let before = [p.d[0].cma_calls, p.d[1].cma_calls];
    p.c[1].receiver_waiting = true;
    let a = pattern(n, seed);
    let mut b = vec![0u8; n];
    let post_send = |p: &mut Pair, a: &[u8]| {
        p.c[0].sender_waiting = true;
        let s = p.send(0, a, 5);
        p.c[0].sender_waiting = false;
        s
    };
    let (s, r) = if recv_first {
        let r = p.recv(1, &mut b, 0, 5);
        (post_send(p, &a), r)
    } else {
        let s = post_send(p, &a);
        p.pump();
        (s, p.recv(1, &mut b, 0, 5))
    };
    p.pump();
    let calls = [p.d[0].cma_calls - before[0], p.d[1].cma_calls - before[1]];
    (s, r, a, b, calls)
}

#[test]
fn both_waiting_split_the_cma_copy() {
    let n = 300_003; // above the split minimum (256 KiB), not a multiple of a page
    let mut p = Pair::new(64, true, true, 4);
    // The first transfer proves CMA with the peer: the receiver reads it all.
    let (s, r, a, b, calls) = blocking_rendezvous(&mut p, n, 1, true);
    assert!(s.is_complete() && r.is_complete());
    assert!(a == b, "payload differs");
    assert_eq!(calls, [0, 1]);
    // Then both copy: the receiver reads its half, the sender writes the rest.
    for recv_first in [true, false] {
        let (s, r, a, b, calls) = blocking_rendezvous(&mut p, n, 2, recv_first);
        assert_eq!(calls, [1, 1], "recv_first {recv_first}");
        assert!(a == b, "payload differs (recv_first {recv_first})");
        let st = Status {
            source: 0,
            tag: 5,
            len: n,
        };
        assert_eq!(r.outcome().unwrap(), (st, None));
        assert_eq!(s.outcome().unwrap().1, None);
    }
    // A nonblocking send (its thread may compute) is never asked to copy.
    let a = pattern(n, 3);
    let mut b = vec![0u8; n];
    let before = p.d[0].cma_calls;
    let r = p.recv(1, &mut b, 0, 6);
    let s = p.send(0, &a, 6);
    p.pump();
    assert!(s.is_complete() && r.is_complete() && a == b);
    assert_eq!(p.d[0].cma_calls, before);
    // Below the minimum, no split either.
    let (_, _, a, b, calls) = blocking_rendezvous(&mut p, 100_000, 4, true);
    assert!(a == b);
    assert_eq!(calls, [0, 1]);
    assert_eq!(p.c[0].live_requests() + p.c[1].live_requests(), 0);
}

#[test]
fn a_split_whose_copy_fails_on_either_side_is_not_lost() {
    let n = 300_003;
    // The sender's write is refused after the proof: it streams its share as DATA.
    let mut p = Pair::new(64, true, true, 4);
    blocking_rendezvous(&mut p, n, 1, true);
    p.d[0].cma = false;
    let (s, r, a, b, calls) = blocking_rendezvous(&mut p, n, 2, true);
    assert_eq!(calls, [0, 1]);
    assert!(a == b, "payload differs after the sender's fallback");
    assert_eq!(r.outcome().unwrap().1, None);
    assert_eq!(s.outcome().unwrap().1, None);
    assert_eq!(p.c[0].cma_failure.map(|f| f.0), Some(1));
    // The receiver's read of its share is refused: the sender still writes its share and
    // sends FIN, and only then does the receive fail (its buffer is not handed back while
    // the sender may write into it).
    let mut p = Pair::new(64, true, true, 4);
    blocking_rendezvous(&mut p, n, 1, true);
    p.d[1].cma = false;
    let (s, r, a, b, calls) = blocking_rendezvous(&mut p, n, 2, true);
    assert_eq!(calls, [1, 0]);
    assert_eq!(s.outcome().unwrap().1, None);
    assert!(matches!(
        r.outcome().unwrap().1,
        Some(Fail::Malformed { rank: 0, .. })
    ));
    let half = (n / 2) & !4095;
    assert!(a[half..] == b[half..], "the sender's share differs");
    assert_eq!(p.c[0].live_requests() + p.c[1].live_requests(), 0);
}
