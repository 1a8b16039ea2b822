//! `tocsin-testrank`: the point-to-point test program, one case per run, for `tests/p2p.rs`.
//!
//! Usage: `tocsin run -n N -- tocsin-testrank [--timeout S] CASE [CASE OPTIONS]` (or under
//! `mpiexec.hydra`); `tocsin-testrank help CASE` lists a case's options, and an unknown case
//! or option is an error. Every rank runs the case, checks real outcomes (bytes byte for
//! byte, statuses, error variants) and prints `ok CASE rank R/N` on success; on failure it
//! prints `FAIL CASE rank R/N: why` on stderr and exits 1. A watchdog ends a rank stuck
//! longer than `--timeout` seconds (default 60) with exit code 3 and the last step it
//! reached. The harness (reporting, watchdog, message contents) is
//! [`tocsin_cli::testkit`].
//!
//! Cases (ranks needed):
//! - `sizes` (≥2): sizes 0, 1, eager−1, eager, eager+1, 4 MiB+3 between ranks 0 and 1 in
//!   both directions; blocking and non-blocking on either side; receive posted before the
//!   message (irecv, then barrier) and after it arrived (barrier, then iprobe until seen).
//! - `wildcards` (≥3): ANY_SOURCE / ANY_TAG receives at every root in turn; statuses name the
//!   real source and tag, per-source order holds, a pre-posted ANY_SOURCE receive with a
//!   definite tag skips earlier messages with other tags, and a message goes to the earliest
//!   posted receive that accepts it, wildcard or not.
//! - `ordering` (≥2): non-overtaking for many mixed eager/rendezvous messages with one
//!   (source, tag), pre-posted or not; different tags received out of order by tag.
//! - `truncation` (≥2): eager and rendezvous messages into short buffers give
//!   `Error::Truncated` with both sizes, the first bytes delivered, nothing written past the
//!   buffer, and later messages still arrive.
//! - `self` (≥1): a rank sends to itself (eager, rendezvous, truncating, ANY_SOURCE).
//! - `random` (≥2): `--total` (10,000) randomly sized messages to random peers,
//!   counts exchanged first, contents and per-message checksums verified.
//! - `probe` (≥2): probe / iprobe statuses, messages left in place.
//! - `errors` (≥2): configuration, rank and tag errors; the library keeps working after.
//! - `errors-sendrecv` (≥2): `sendrecv` with an invalid destination fails at once and leaves
//!   no receive posted behind.
//! - `sendrecv` (≥2): ring shifts by every distance, to self, with ANY_SOURCE.
//! - `waitany` (≥2): wait_any over receives from every rank, Request::test for receives and
//!   sends, wait_all with a truncating request among them.
//! - `die` (≥2): rank 1 sends one message and exits 0 at once; rank 0 still receives that
//!   message, then gets `Error::PeerDied` (receive, rendezvous send, iprobe) within seconds;
//!   ranks ≥2 keep talking to rank 0.
//! - `die-unexpected` (≥2): rank 1 sends a message and exits; rank 0 first waits for
//!   another one (getting `PeerDied`), then receives the first.
//! - `die-rendezvous` (≥2): rank 1 posts a 4 MiB isend and exits; rank 0's receive ends
//!   with the right bytes or `PeerDied`, within seconds.
//! - `die-watcher-busy` (≥3): the last rank exits at once while the rank that watches it
//!   (the one before it on the node) computes for 6 s without calling tocsin; rank 0's
//!   receive from the dead rank still ends with `PeerDied` within seconds, and an
//!   `ANY_SOURCE` receive is still matched by the busy rank afterwards.
//! - `flood` (≥2): `--messages` (3000) mixed messages with tags 0, 1, 2 posted at once
//!   from every rank but 1 to rank 1, and from rank 1 to rank 0; received tag 2 first, then
//!   1, then 0 (unexpected queue and full rings).
//! - `sleepy` (≥2): receives and rendezvous sends that wait ~400 ms for a napping peer, and
//!   a receive posted before a computation; in every mode but poll the waits must use less
//!   than half their wall time in CPU, and in thread, signal and uintr modes the receive
//!   posted before the computation must complete during it.
//! - `background` (≥2): rank 1 posts a receive and computes 400 ms while rank 0 sends; the
//!   computation must not be starved, and in thread, signal and uintr modes the receive must
//!   have completed meanwhile (`--len`, `--count`, `--barrier`, `--barrier-late-ms`).
//! - `threads` (≥2): `--threads` (2) threads per rank communicate at once, each with
//!   its own tags.
//! - `threads-cross` (≥2): a thread blocked in a receive from its own rank is woken by
//!   another thread's send (eager and rendezvous); producer and consumer threads.
//! - `hold` (≥1): initialize, barrier, print `pid R PID`, sleep `--secs` (30).
//! - `hold-bootstrap` (≥2): print `pid R PID`; ranks other than 0 sleep
//!   `--secs` before initializing, so rank 0 stays inside the bootstrap.

use std::fmt::Debug;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tocsin::{wait_all, wait_any, Comm, Config, Error, Rank, Status, Tag, ANY_SOURCE, ANY_TAG};
use tocsin_cli::ensure;
use tocsin_cli::testkit::checks::{self, SENTINEL};
use tocsin_cli::testkit::data::{checksum, pattern, seed, Rng};
use tocsin_cli::testkit::report::{fail, step, who};
use tocsin_cli::testkit::{report, Ctx, R};

/// Slack after every receive buffer, filled with [`SENTINEL`].
const SLACK: usize = 16;
/// Large message size of the issue: 4 MiB + 3.
const BIG: usize = (4 << 20) + 3;

/// A receive buffer of `len` bytes followed by [`SLACK`] sentinel bytes.
fn rbuf(len: usize) -> Vec<u8> {
    vec![SENTINEL; len + SLACK]
}

/// Compares received bytes with the expected ones; names the first difference.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> R {
    if got.len() != want.len() {
        return Err(fail(format!(
            "{what}: {} bytes where {} were expected",
            got.len(),
            want.len()
        )));
    }
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
        return Err(fail(format!(
            "{what}: byte {i} of {} is {:#04x}, expected {:#04x} ({bad} bytes differ)",
            want.len(),
            got[i],
            want[i]
        )));
    }
    Ok(())
}

/// Checks a completed receive: status (source, tag, length), the bytes, and that nothing
/// was written after the message (`buf` is a [`rbuf`]: message area then sentinel).
fn check_recv(what: &str, st: &Status, buf: &[u8], src: Rank, tag: Tag, want: &[u8]) -> R {
    ensure!(
        st.source == src && st.tag == tag && st.len == want.len(),
        "{what}: status {st:?}, expected source {src} tag {tag} len {}",
        want.len()
    );
    same_bytes(what, &buf[..want.len()], want)?;
    check_untouched(what, buf, want.len())
}

/// Checks that `buf[from..]` still holds the sentinel.
fn check_untouched(what: &str, buf: &[u8], from: usize) -> R {
    checks::untouched(buf, from).map_err(|e| fail(format!("{what}: {e}")))
}

fn expect_err<T: Debug>(
    what: &str,
    r: tocsin::Result<T>,
    pred: impl FnOnce(&Error) -> bool,
    want: &str,
) -> R {
    match r {
        Err(e) if pred(&e) => {
            ensure!(
                !e.to_string().is_empty(),
                "{what}: error {e:?} has an empty message"
            );
            Ok(())
        }
        Err(e) => Err(fail(format!(
            "{what}: got error {e:?} ({e}), expected {want}"
        ))),
        Ok(v) => Err(fail(format!(
            "{what}: succeeded with {v:?}, expected {want}"
        ))),
    }
}

/// Waits (making progress through `iprobe`) until a message (src, tag) has arrived; returns
/// its status.
fn wait_arrival(comm: &Comm, src: Rank, tag: Tag) -> R<Status> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = comm.iprobe(src, tag).ctx("iprobe")? {
            return Ok(st);
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "message from {src} tag {tag} not seen by iprobe after 20 s"
        );
        std::thread::yield_now();
    }
}

fn eager(comm: &Comm) -> usize {
    comm.config().eager_threshold_bytes()
}

/// The sizes of the issue: 0, 1, eager−1, eager, eager+1, 4 MiB+3.
fn issue_sizes(comm: &Comm) -> Vec<usize> {
    let e = eager(comm);
    let mut v = vec![0, 1, e.saturating_sub(1), e, e + 1, BIG];
    v.sort_unstable();
    v.dedup();
    v
}

fn need_ranks(comm: &Comm, n: u32) -> R {
    ensure!(
        comm.size() >= n,
        "this case needs at least {n} ranks, the job has {}",
        comm.size()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// sizes

#[derive(Debug, Clone, Copy)]
enum Order {
    /// No synchronization: whichever comes first.
    Race { nb_send: bool, nb_recv: bool },
    /// The receive is posted (irecv), then a barrier, then the send.
    RecvFirst { nb_send: bool },
    /// The send is posted, a barrier, the message is seen by iprobe, then the receive.
    SendFirst { nb_recv: bool },
}

const ORDERS: [Order; 8] = [
    Order::Race {
        nb_send: false,
        nb_recv: false,
    },
    Order::Race {
        nb_send: true,
        nb_recv: true,
    },
    Order::Race {
        nb_send: true,
        nb_recv: false,
    },
    Order::Race {
        nb_send: false,
        nb_recv: true,
    },
    Order::RecvFirst { nb_send: false },
    Order::RecvFirst { nb_send: true },
    Order::SendFirst { nb_recv: false },
    Order::SendFirst { nb_recv: true },
];

/// One transfer of `data` from `from` to `to` with `tag` in the given order. Every rank calls
/// it (the orders with a barrier need everyone).
fn transfer(comm: &Comm, order: Order, from: Rank, to: Rank, tag: Tag, data: &[u8]) -> R {
    let me = comm.rank();
    let what = format!(
        "{} bytes {from}->{to} tag {tag} {order:?} ({} mode)",
        data.len(),
        comm.config().progress_mode().name()
    );
    step(format!("sizes: {what}"));
    let is_eager = data.len() <= eager(comm);
    let send = |nb: bool| -> R {
        if nb {
            comm.scope(|s| {
                let q = s.isend(data, to, tag).ctx(format!("{what}: isend"))?;
                let st = q.wait().ctx(format!("{what}: isend wait"))?;
                ensure!(
                    st.len == data.len() && st.tag == tag,
                    "{what}: send status {st:?}"
                );
                Ok(())
            })
        } else {
            comm.send(data, to, tag).ctx(format!("{what}: send"))
        }
    };
    let mut buf = rbuf(data.len());
    let recv = |buf: &mut Vec<u8>, nb: bool| -> R<Status> {
        let n = data.len();
        if nb {
            comm.scope(|s| {
                let r = s
                    .irecv(&mut buf[..n], from, tag)
                    .ctx(format!("{what}: irecv"))?;
                r.wait().ctx(format!("{what}: irecv wait"))
            })
        } else {
            comm.recv(&mut buf[..n], from, tag)
                .ctx(format!("{what}: recv"))
        }
    };
    match order {
        Order::Race { nb_send, nb_recv } => {
            if me == from {
                send(nb_send)?;
            } else if me == to {
                let st = recv(&mut buf, nb_recv)?;
                check_recv(&what, &st, &buf, from, tag, data)?;
            }
        }
        Order::RecvFirst { nb_send } => {
            if me == to {
                let n = data.len();
                let st = comm.scope(|s| -> R<Status> {
                    let r = s
                        .irecv(&mut buf[..n], from, tag)
                        .ctx(format!("{what}: irecv"))?;
                    comm.barrier().ctx("barrier")?;
                    r.wait().ctx(format!("{what}: irecv wait"))
                })?;
                check_recv(&what, &st, &buf, from, tag, data)?;
            } else {
                comm.barrier().ctx("barrier")?;
                if me == from {
                    send(nb_send)?;
                }
            }
        }
        Order::SendFirst { nb_recv } => {
            if me == from {
                if is_eager {
                    // A blocking eager send completes without the receiver.
                    comm.send(data, to, tag)
                        .ctx(format!("{what}: eager send"))?;
                    comm.barrier().ctx("barrier")?;
                } else {
                    comm.scope(|s| -> R {
                        let q = s.isend(data, to, tag).ctx(format!("{what}: isend"))?;
                        comm.barrier().ctx("barrier")?;
                        q.wait().ctx(format!("{what}: isend wait"))?;
                        Ok(())
                    })?;
                }
            } else {
                comm.barrier().ctx("barrier")?;
                if me == to {
                    let st = wait_arrival(comm, from, tag)?;
                    ensure!(
                        st.source == from && st.tag == tag && st.len == data.len(),
                        "{what}: iprobe status {st:?}"
                    );
                    let st = recv(&mut buf, nb_recv)?;
                    check_recv(&what, &st, &buf, from, tag, data)?;
                }
            }
        }
    }
    Ok(())
}

fn case_sizes(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let sizes = issue_sizes(comm);
    for (si, &n) in sizes.iter().enumerate() {
        for (from, to) in [(0, 1), (1, 0)] {
            let data = pattern(seed(&[1, n as u64, from as u64]), n);
            for (oi, &order) in ORDERS.iter().enumerate() {
                let tag = (1000 * from + 100 * oi as u32 + si as u32) as Tag;
                transfer(comm, order, from, to, tag, &data)?;
            }
        }
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// wildcards

fn case_wildcards(comm: &Comm) -> R {
    need_ranks(comm, 3)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    const K: u32 = 6;
    let size_of = |j: u32| match j {
        2 => e + 100,
        4 => 0,
        _ => 8 + 3 * j as usize,
    };
    let maxlen = e + 100;
    let data_of = |root: Rank, src: Rank, j: u32| {
        pattern(seed(&[2, root as u64, src as u64, j as u64]), size_of(j))
    };
    for root in 0..n {
        step(format!("wildcards root {root}: ANY_SOURCE/ANY_TAG"));
        // Phase 1: every other rank sends K messages with distinct tags; the root receives
        // them all with ANY_SOURCE + ANY_TAG, and each source's messages come in order.
        if me == root {
            let mut next = vec![0u32; n as usize];
            let mut buf = rbuf(maxlen);
            for k in 0..(n - 1) * K {
                buf.fill(SENTINEL);
                let st = comm
                    .recv(&mut buf[..maxlen], ANY_SOURCE, ANY_TAG)
                    .ctx(format!("root {root}: recv(ANY_SOURCE, ANY_TAG) #{k}"))?;
                let s = st.source;
                ensure!(
                    s < n && s != root,
                    "root {root}: status names source {s}: {st:?}"
                );
                let j = st.tag - 10 * s as Tag;
                ensure!(
                    j == next[s as usize] as Tag,
                    "root {root}: from {s} got tag {} (message #{j}) but message #{} was next: \
                     per-source order broken or wrong tag in status",
                    st.tag,
                    next[s as usize]
                );
                let want = data_of(root, s, j as u32);
                check_recv(
                    &format!("root {root}: message {j} of {s}"),
                    &st,
                    &buf,
                    s,
                    st.tag,
                    &want,
                )?;
                next[s as usize] += 1;
            }
            for s in (0..n).filter(|&s| s != root) {
                ensure!(
                    next[s as usize] == K,
                    "root {root}: {} messages from {s}, expected {K}",
                    next[s as usize]
                );
            }
        } else {
            for j in 0..K {
                let d = data_of(root, me, j);
                comm.send(&d, root, 10 * me as Tag + j as Tag)
                    .ctx(format!("send #{j} to root {root}"))?;
            }
        }
        comm.barrier().ctx("barrier")?;

        // Phase 2: a pre-posted ANY_SOURCE receive with a definite tag (rendezvous) must
        // skip the earlier messages with another tag; then ANY_SOURCE with tag 78.
        step(format!("wildcards root {root}: pre-posted ANY_SOURCE"));
        let chosen = (root + 1) % n;
        let big = pattern(seed(&[3, root as u64]), e * 3 + 1);
        // 40..100 bytes (the root's buffers hold 100), different for neighbouring ranks.
        let small_of = |s: Rank| pattern(seed(&[4, root as u64, s as u64]), 40 + s as usize % 60);
        if me == root {
            let mut bbuf = rbuf(big.len());
            let st = comm.scope(|sc| -> R<Status> {
                let r = sc
                    .irecv(&mut bbuf[..big.len()], ANY_SOURCE, 77)
                    .ctx("irecv(ANY_SOURCE, 77)")?;
                comm.barrier().ctx("barrier")?;
                r.wait().ctx("irecv(ANY_SOURCE, 77) wait")
            })?;
            check_recv(
                &format!("root {root}: pre-posted ANY_SOURCE tag 77"),
                &st,
                &bbuf,
                chosen,
                77,
                &big,
            )?;
            let mut seen = vec![false; n as usize];
            for _ in 0..n - 1 {
                let mut buf = rbuf(100);
                let st = comm
                    .recv(&mut buf[..100], ANY_SOURCE, 78)
                    .ctx("recv(ANY_SOURCE, 78)")?;
                ensure!(
                    st.source < n && st.source != root && !seen[st.source as usize],
                    "root {root}: recv(ANY_SOURCE, 78) status {st:?} (seen {seen:?})"
                );
                seen[st.source as usize] = true;
                check_recv("tag 78", &st, &buf, st.source, 78, &small_of(st.source))?;
            }
            // Phase 3: a definite source with ANY_TAG, sources in decreasing order.
            step(format!("wildcards root {root}: definite source, ANY_TAG"));
            for s in (0..n).rev().filter(|&s| s != root) {
                for t in [90, 91] {
                    let mut buf = rbuf(100);
                    let st = comm
                        .recv(&mut buf[..100], s, ANY_TAG)
                        .ctx(format!("recv({s}, ANY_TAG)"))?;
                    let want =
                        pattern(seed(&[5, root as u64, s as u64, t as u64]), t as usize - 80);
                    check_recv(
                        &format!("root {root}: recv({s}, ANY_TAG)"),
                        &st,
                        &buf,
                        s,
                        t,
                        &want,
                    )?;
                }
            }
            ensure!(
                comm.iprobe(ANY_SOURCE, ANY_TAG).ctx("iprobe")?.is_none(),
                "root {root}: a message is left over"
            );
        } else {
            comm.barrier().ctx("barrier")?;
            // Non-blocking: with a tiny eager threshold tag 78 is a rendezvous that the root
            // only matches after tag 77.
            let small = small_of(me);
            comm.scope(|s| -> R {
                let mut reqs = vec![s.isend(&small, root, 78).ctx("isend tag 78")?];
                if me == chosen {
                    reqs.push(s.isend(&big, root, 77).ctx("isend tag 77")?);
                }
                wait_all(reqs).ctx("sends of tags 78 and 77")?;
                Ok(())
            })?;
            for t in [90, 91] {
                let d = pattern(
                    seed(&[5, root as u64, me as u64, t as u64]),
                    t as usize - 80,
                );
                comm.send(&d, root, t).ctx(format!("send tag {t}"))?;
            }
        }
        comm.barrier().ctx("barrier")?;
        posted_order(comm, root, chosen)?;
        comm.barrier().ctx("barrier")?;
    }
    Ok(())
}

/// A message matches the earliest posted receive that accepts it, whether that receive
/// names its source and tag or uses wildcards. `root` posts, in this order:
/// A = (chosen, 5), B = (ANY_SOURCE, ANY_TAG), C = (chosen, ANY_TAG), D = (ANY_SOURCE, 5),
/// E = (chosen, 5); then `chosen` sends tags 5, 6, 5, 5, 7 (the second one a rendezvous).
/// Expected: A←#0 (5), B←#1 (6), C←#2 (5), D←#3 (5), E stays pending until #5 (tag 5)
/// while #4 (tag 7) stays unexpected.
fn posted_order(comm: &Comm, root: Rank, chosen: Rank) -> R {
    let me = comm.rank();
    let e = eager(comm);
    step(format!("wildcards root {root}: posted-receive order"));
    let tags: [Tag; 6] = [5, 6, 5, 5, 7, 5];
    let len_of = |i: usize| if i == 1 { 2 * e + 3 } else { 30 + i };
    let msg = |i: usize| pattern(seed(&[26, root as u64, i as u64]), len_of(i));
    if me == root {
        let maxlen = (0..6).map(len_of).max().unwrap();
        let mut bufs: Vec<Vec<u8>> = (0..5).map(|_| rbuf(maxlen)).collect();
        let pats: [(Rank, Tag); 5] = [
            (chosen, 5),
            (ANY_SOURCE, ANY_TAG),
            (chosen, ANY_TAG),
            (ANY_SOURCE, 5),
            (chosen, 5),
        ];
        let sts = comm.scope(|s| -> R<Vec<Status>> {
            let mut reqs = Vec::new();
            for (b, &(src, tag)) in bufs.iter_mut().zip(&pats) {
                reqs.push(s.irecv(&mut b[..maxlen], src, tag).ctx("irecv")?);
            }
            comm.barrier().ctx("barrier")?;
            // Messages #0..#4 are on their way; #4 (tag 7) must not complete E.
            let mut first4 = Vec::new();
            for r in reqs.drain(..4) {
                first4.push(r.wait().ctx("wait A..D")?);
            }
            let t = wait_arrival(comm, chosen, 7)?;
            ensure!(t.tag == 7, "iprobe(chosen, 7) = {t:?}");
            let mut e_req = reqs.pop().unwrap();
            ensure!(
                e_req.test().ctx("test E")?.is_none(),
                "receive E ({chosen}, 5) completed before message #5 was sent"
            );
            comm.barrier().ctx("barrier")?;
            first4.push(e_req.wait().ctx("wait E")?);
            Ok(first4)
        })?;
        let expect = [0usize, 1, 2, 3, 5];
        for (k, (&i, st)) in expect.iter().zip(&sts).enumerate() {
            check_recv(
                &format!(
                    "root {root}: posted receive {} should get message #{i}",
                    "ABCDE".as_bytes()[k] as char
                ),
                st,
                &bufs[k],
                chosen,
                tags[i],
                &msg(i),
            )?;
        }
        let mut b = rbuf(100);
        let st = comm.recv(&mut b[..100], chosen, 7).ctx("recv #4")?;
        check_recv("message #4 (tag 7)", &st, &b, chosen, 7, &msg(4))?;
    } else {
        comm.barrier().ctx("barrier")?;
        if me == chosen {
            let ms: Vec<Vec<u8>> = (0..6).map(msg).collect();
            comm.scope(|s| -> R {
                let mut reqs = Vec::new();
                for (i, m) in ms.iter().enumerate().take(5) {
                    reqs.push(s.isend(m, root, tags[i]).ctx("isend")?);
                }
                comm.barrier().ctx("barrier")?;
                comm.send(&ms[5], root, 5).ctx("send #5")?;
                wait_all(reqs).ctx("wait_all")?;
                Ok(())
            })?;
        } else {
            comm.barrier().ctx("barrier")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// flood: many unexpected messages, rings full, receives by tag in another order

fn case_flood(comm: &Comm, m: usize) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    // Every rank but 1 floods rank 1; rank 1 floods rank 0 at the same time.
    let senders: Vec<Rank> = (0..n).filter(|&r| r != 1).collect();
    let len_of = |i: usize| match i % 11 {
        0 => 0,
        5 => e,
        10 if i % 3 == 0 => 3 * e + i,
        _ => (i * 37) % (e + 1),
    };
    let msg = |from: Rank, i: usize| pattern(seed(&[27, from as u64, i as u64]), len_of(i));
    let tag_of = |i: usize| (i % 3) as Tag;
    let maxlen = (0..m).map(len_of).max().unwrap_or(0);
    let receive_all = |from: &[Rank]| -> R {
        // Tag 2 first, then tag 1, then tag 0 with ANY_TAG: everything else waits in the
        // unexpected queue (or in the rings).
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = rbuf(maxlen);
        for t in [2, 1, 0] {
            for &src in from {
                step(format!("flood: receiving tag {t} from {src}"));
                for i in (0..m).filter(|&i| tag_of(i) == t) {
                    let (ssrc, stag) = if t == 0 { (src, ANY_TAG) } else { (src, t) };
                    buf.fill(SENTINEL);
                    let st = comm
                        .recv(&mut buf[..maxlen], ssrc, stag)
                        .ctx(format!("recv #{i} from {src}"))?;
                    check_recv(
                        &format!("flood message #{i} from {src}"),
                        &st,
                        &buf,
                        src,
                        t,
                        &msg(src, i),
                    )?;
                }
            }
        }
        Ok(())
    };
    let send_all = |to: Rank| -> R {
        step(format!("flood: sending {m} messages to {to}"));
        let ms: Vec<Vec<u8>> = (0..m).map(|i| msg(me, i)).collect();
        comm.scope(|s| -> R {
            let mut reqs = Vec::new();
            for (i, mm) in ms.iter().enumerate() {
                reqs.push(s.isend(mm, to, tag_of(i)).ctx("isend")?);
            }
            if me == 0 || me == 1 {
                // Ranks 0 and 1 also receive while their sends are pending.
                let from: Vec<Rank> = if me == 1 { senders.clone() } else { vec![1] };
                receive_all(&from)?;
            }
            step("flood: waiting for the sends");
            wait_all(reqs).ctx("wait_all of the sends")?;
            Ok(())
        })
    };
    if me == 1 {
        send_all(0)?;
    } else {
        send_all(1)?;
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// ordering

fn case_ordering(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let me = comm.rank();
    let e = eager(comm);
    const M: usize = 300;
    let size_of = |i: usize| {
        if i % 50 == 4 {
            1 << 20
        } else {
            match i % 7 {
                0 => 0,
                1 => 1,
                2 => e,
                3 => e + 1,
                4 => 50_000 + i,
                5 => 17,
                _ => e.saturating_sub(1),
            }
        }
    };
    let data_of = |part: u64, i: usize| pattern(seed(&[6, part, i as u64]), size_of(i));
    let maxlen = (0..M).map(size_of).max().unwrap();

    // A: the sender posts every message at once (isend), the receiver takes them one by one.
    step("ordering A: isend all, blocking recv");
    if me == 0 {
        let msgs: Vec<Vec<u8>> = (0..M).map(|i| data_of(1, i)).collect();
        comm.scope(|s| -> R {
            let reqs = msgs
                .iter()
                .map(|m| s.isend(m, 1, 5))
                .collect::<tocsin::Result<Vec<_>>>()
                .ctx("isend")?;
            wait_all(reqs).ctx("wait_all of the sends")?;
            Ok(())
        })?;
    } else if me == 1 {
        let mut buf = rbuf(maxlen);
        for i in 0..M {
            buf.fill(SENTINEL);
            let st = comm
                .recv(&mut buf[..maxlen], 0, 5)
                .ctx(format!("recv #{i}"))?;
            check_recv(&format!("A: message #{i}"), &st, &buf, 0, 5, &data_of(1, i))?;
        }
    }
    comm.barrier().ctx("barrier")?;

    // B: the receiver pre-posts every receive (irecv), then the sender sends blocking.
    step("ordering B: irecv all pre-posted, blocking send");
    if me == 1 {
        let mut bufs: Vec<Vec<u8>> = (0..M).map(|i| rbuf(size_of(i))).collect();
        let sts = comm.scope(|s| -> R<Vec<Status>> {
            let reqs = bufs
                .iter_mut()
                .enumerate()
                .map(|(i, b)| s.irecv(&mut b[..size_of(i)], 0, 6))
                .collect::<tocsin::Result<Vec<_>>>()
                .ctx("irecv")?;
            comm.barrier().ctx("barrier")?;
            wait_all(reqs).ctx("wait_all of the receives")
        })?;
        for (i, (st, b)) in sts.iter().zip(&bufs).enumerate() {
            check_recv(&format!("B: message #{i}"), st, b, 0, 6, &data_of(2, i))?;
        }
    } else {
        comm.barrier().ctx("barrier")?;
        if me == 0 {
            for i in 0..M {
                comm.send(&data_of(2, i), 1, 6).ctx(format!("send #{i}"))?;
            }
        }
    }
    comm.barrier().ctx("barrier")?;

    // C: one message per tag 20..30, received in decreasing tag order.
    step("ordering C: tags received in reverse order");
    let tags: Vec<Tag> = (20..30).collect();
    let c_of = |t: Tag| pattern(seed(&[7, t as u64]), size_of(t as usize));
    if me == 0 {
        let msgs: Vec<Vec<u8>> = tags.iter().map(|&t| c_of(t)).collect();
        comm.scope(|s| -> R {
            let reqs = msgs
                .iter()
                .zip(&tags)
                .map(|(m, &t)| s.isend(m, 1, t))
                .collect::<tocsin::Result<Vec<_>>>()
                .ctx("isend")?;
            wait_all(reqs).ctx("wait_all")?;
            Ok(())
        })?;
    } else if me == 1 {
        let mut buf = rbuf(maxlen);
        for &t in tags.iter().rev() {
            buf.fill(SENTINEL);
            let st = comm
                .recv(&mut buf[..maxlen], 0, t)
                .ctx(format!("recv tag {t}"))?;
            check_recv(&format!("C: tag {t}"), &st, &buf, 0, t, &c_of(t))?;
        }
    }
    comm.barrier().ctx("barrier")?;

    // D: tags 40 and 41 interleaved; the 41s by tag first, then the 40s with ANY_TAG in order.
    step("ordering D: interleaved tags, ANY_TAG keeps order");
    let d_of = |i: usize| pattern(seed(&[8, i as u64]), size_of(i));
    let tag_of = |i: usize| 40 + (i % 2) as Tag;
    const D: usize = 40;
    if me == 0 {
        let msgs: Vec<Vec<u8>> = (0..D).map(d_of).collect();
        comm.scope(|s| -> R {
            let reqs = msgs
                .iter()
                .enumerate()
                .map(|(i, m)| s.isend(m, 1, tag_of(i)))
                .collect::<tocsin::Result<Vec<_>>>()
                .ctx("isend")?;
            wait_all(reqs).ctx("wait_all")?;
            Ok(())
        })?;
    } else if me == 1 {
        let mut buf = rbuf(maxlen);
        for i in (0..D).filter(|i| i % 2 == 1) {
            buf.fill(SENTINEL);
            let st = comm.recv(&mut buf[..maxlen], 0, 41).ctx("recv tag 41")?;
            check_recv(&format!("D: #{i} (tag 41)"), &st, &buf, 0, 41, &d_of(i))?;
        }
        for i in (0..D).filter(|i| i % 2 == 0) {
            buf.fill(SENTINEL);
            let st = comm
                .recv(&mut buf[..maxlen], ANY_SOURCE, ANY_TAG)
                .ctx("recv ANY_TAG")?;
            check_recv(&format!("D: #{i} (ANY_TAG)"), &st, &buf, 0, 40, &d_of(i))?;
        }
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// truncation

fn case_truncation(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let me = comm.rank();
    let e = eager(comm);
    let cases = [
        (100, 10),
        (100, 0),
        (e, e / 2),
        (e + 1, e),
        (200_000, 1000),
        (200_000, e + 7),
        (200_000, 0),
        (BIG, 1 << 20),
    ];
    // Receive styles: 0 blocking recv, 1 irecv, 2 recv(ANY_SOURCE, ANY_TAG).
    // Orders: 0 race, 1 receive posted first, 2 message arrived first.
    let mut tag: Tag = 0;
    // (With a tiny eager threshold some pairs would not truncate: skip them.)
    for (ci, &(len, blen)) in cases.iter().enumerate().filter(|(_, &(l, b))| l > b) {
        for style in 0..3 {
            for order in 0..3 {
                tag += 2;
                let what = format!(
                    "{len}-byte message into {blen}-byte buffer, tag {tag}, style {}, order {}",
                    ["recv", "irecv", "recv(ANY,ANY)"][style],
                    ["race", "receive first", "message first"][order]
                );
                step(format!("truncation: {what}"));
                let data = pattern(seed(&[9, ci as u64]), len);
                let follow = pattern(seed(&[10, tag as u64]), 33);
                if me == 0 {
                    if order == 1 {
                        comm.barrier().ctx("barrier")?;
                    }
                    comm.scope(|s| -> R {
                        let q = s.isend(&data, 1, tag).ctx(format!("{what}: isend"))?;
                        if order == 2 {
                            comm.barrier().ctx("barrier")?;
                        }
                        let st = q.wait().ctx(format!(
                            "{what}: the sender's request (a truncated receive must not fail the send)"
                        ))?;
                        ensure!(st.len == len, "{what}: send status {st:?}");
                        Ok(())
                    })?;
                    comm.send(&follow, 1, tag).ctx("follow-up send")?;
                } else if me == 1 {
                    let mut buf = rbuf(blen);
                    let (src, rtag) = if style == 2 {
                        (ANY_SOURCE, ANY_TAG)
                    } else {
                        (0, tag)
                    };
                    if order == 2 {
                        comm.barrier().ctx("barrier")?;
                        wait_arrival(comm, 0, tag)?;
                    }
                    let r = if order == 1 || style == 1 {
                        comm.scope(|s| {
                            let r = s.irecv(&mut buf[..blen], src, rtag)?;
                            if order == 1 {
                                comm.barrier()?;
                            }
                            r.wait()
                        })
                    } else {
                        comm.recv(&mut buf[..blen], src, rtag)
                    };
                    let ok = matches!(
                        r,
                        Err(Error::Truncated { message_len, buffer_len, from: 0, tag: t })
                            if message_len == len && buffer_len == blen && t == tag
                    );
                    ensure!(
                        ok,
                        "{what}: got {r:?}, expected Err(Truncated {{ message_len: {len}, buffer_len: {blen}, from: 0, tag: {tag} }})"
                    );
                    same_bytes(
                        &format!("{what}: delivered prefix"),
                        &buf[..blen],
                        &data[..blen],
                    )?;
                    check_untouched(&what, &buf, blen)?;
                    let mut fb = rbuf(100);
                    let st = comm
                        .recv(&mut fb[..100], 0, tag)
                        .ctx(format!("{what}: follow-up message"))?;
                    check_recv(&format!("{what}: follow-up"), &st, &fb, 0, tag, &follow)?;
                } else if order != 0 {
                    comm.barrier().ctx("barrier")?;
                }
            }
        }
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// self

fn case_self(comm: &Comm) -> R {
    let me = comm.rank();
    let e = eager(comm);
    let mut sizes = issue_sizes(comm);
    sizes.push(200_000);
    for (i, &n) in sizes.iter().enumerate() {
        let tag = 10 + i as Tag;
        let data = pattern(seed(&[11, me as u64, n as u64]), n);
        let what = format!("self {n} bytes");
        let mut buf = rbuf(n);
        if n <= e {
            step(format!("{what}: send then recv"));
            comm.send(&data, me, tag).ctx(format!("{what}: send"))?;
            let st = comm
                .recv(&mut buf[..n], me, tag)
                .ctx(format!("{what}: recv"))?;
            check_recv(&format!("{what} (send, recv)"), &st, &buf, me, tag, &data)?;
        }
        // isend then blocking recv inside the scope.
        step(format!("{what}: isend then recv"));
        buf.fill(SENTINEL);
        let st = comm.scope(|s| -> R<Status> {
            let q = s.isend(&data, me, tag).ctx("isend")?;
            let st = comm.recv(&mut buf[..n], me, tag).ctx("recv")?;
            q.wait().ctx("isend wait")?;
            Ok(st)
        })?;
        check_recv(&format!("{what} (isend, recv)"), &st, &buf, me, tag, &data)?;
        // irecv posted first, then a blocking send.
        step(format!("{what}: irecv then send"));
        buf.fill(SENTINEL);
        let st = comm.scope(|s| -> R<Status> {
            let r = s.irecv(&mut buf[..n], me, tag).ctx("irecv")?;
            comm.send(&data, me, tag).ctx("send")?;
            r.wait().ctx("irecv wait")
        })?;
        check_recv(&format!("{what} (irecv, send)"), &st, &buf, me, tag, &data)?;
        // isend and irecv, waited in the "wrong" order.
        step(format!("{what}: isend, irecv, wait send first"));
        buf.fill(SENTINEL);
        let st = comm.scope(|s| -> R<Status> {
            let q = s.isend(&data, me, tag).ctx("isend")?;
            let r = s.irecv(&mut buf[..n], me, tag).ctx("irecv")?;
            q.wait().ctx("isend wait")?;
            r.wait().ctx("irecv wait")
        })?;
        check_recv(&format!("{what} (isend, irecv)"), &st, &buf, me, tag, &data)?;
    }
    // Order on self with mixed protocols, and a truncating receive.
    step("self: order and truncation");
    let a = pattern(seed(&[12, 1]), 100);
    let b = pattern(seed(&[12, 2]), 3 * e + 5);
    let c = pattern(seed(&[12, 3]), 7);
    let mut ba = rbuf(a.len());
    let mut bb = rbuf(b.len());
    let mut bc = rbuf(c.len());
    let mut bt = rbuf(e);
    let mut bt2 = rbuf(5);
    comm.scope(|s| -> R {
        let q1 = s.isend(&a, me, 50).ctx("isend a")?;
        let q2 = s.isend(&b, me, 50).ctx("isend b")?;
        let q3 = s.isend(&c, me, 50).ctx("isend c")?;
        let mut sts = Vec::new();
        for buf in [&mut ba, &mut bb, &mut bc] {
            let n = buf.len() - SLACK;
            sts.push(comm.recv(&mut buf[..n], me, 50).ctx("recv in order")?);
        }
        wait_all(vec![q1, q2, q3]).ctx("sends")?;
        check_recv("self order a", &sts[0], &ba, me, 50, &a)?;
        check_recv("self order b", &sts[1], &bb, me, 50, &b)?;
        check_recv("self order c", &sts[2], &bc, me, 50, &c)?;
        // Truncation: rendezvous and eager to self.
        let q = s.isend(&b, me, 51).ctx("isend truncated")?;
        let r = comm.recv(&mut bt[..e], me, 51);
        ensure!(
            matches!(r, Err(Error::Truncated { message_len, buffer_len, from, tag: 51 })
                if message_len == b.len() && buffer_len == e && from == me),
            "self rendezvous truncation: got {r:?}"
        );
        q.wait().ctx("isend of the truncated message")?;
        let q = s.isend(&a, me, 52).ctx("isend a")?;
        let r = comm.recv(&mut bt2[..5], ANY_SOURCE, ANY_TAG);
        q.wait().ctx("isend of the truncated message")?;
        ensure!(
            matches!(r, Err(Error::Truncated { message_len: 100, buffer_len: 5, from, tag: 52 })
                if from == me),
            "self truncation (100 bytes) with ANY_SOURCE/ANY_TAG: got {r:?}"
        );
        Ok(())
    })?;
    same_bytes("self truncated rendezvous prefix", &bt[..e], &b[..e])?;
    check_untouched("self truncated rendezvous", &bt, e)?;
    same_bytes("self truncated eager prefix", &bt2[..5], &a[..5])?;
    check_untouched("self truncated eager", &bt2, 5)?;
    // Nothing left.
    ensure!(
        comm.iprobe(ANY_SOURCE, ANY_TAG).ctx("iprobe")?.is_none(),
        "self: a message is left over"
    );
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// random

fn case_random(comm: &Comm, total: usize, maxlen: usize) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let per_rank = total.div_ceil(n as usize);
    let t0 = Instant::now();
    let mut rng = Rng(seed(&[13, me as u64]));
    // Plan: destination and size of each message.
    let mut seq_to = vec![0u64; n as usize];
    let mut plan = Vec::with_capacity(per_rank);
    for _ in 0..per_rank {
        let mut d = rng.below(n as u64 - 1) as Rank;
        if d >= me {
            d += 1;
        }
        let p = rng.below(100);
        let len = if p < 70 {
            rng.range(0, 256)
        } else if p < 95 {
            rng.range(257, e.max(257))
        } else {
            rng.range(e + 1, maxlen)
        };
        let s = seq_to[d as usize];
        seq_to[d as usize] += 1;
        plan.push((d, len, seed(&[14, me as u64, d as u64, s])));
    }
    // 1. Tell every peer how many messages to expect.
    step("random: exchanging counts");
    let mut counts_in = vec![[0u64; 1]; n as usize];
    let counts_out: Vec<[u64; 1]> = seq_to.iter().map(|&c| [c]).collect();
    comm.scope(|s| -> R {
        let mut reqs = Vec::new();
        for (r, c) in counts_in.iter_mut().enumerate() {
            if r as Rank != me {
                reqs.push(s.irecv(c, r as Rank, 1).ctx("irecv count")?);
            }
        }
        for (d, c) in counts_out.iter().enumerate() {
            if d as Rank != me {
                reqs.push(s.isend(c, d as Rank, 1).ctx("isend count")?);
            }
        }
        for st in wait_all(reqs).ctx("count exchange")? {
            ensure!(st.len == 8 && st.tag == 1, "count exchange status {st:?}");
        }
        Ok(())
    })?;
    let expect: Vec<u64> = counts_in.iter().map(|c| c[0]).collect();
    let incoming: u64 = expect.iter().sum();
    // 2. Post every send at once; receive everything addressed to this rank.
    let msgs: Vec<Vec<u8>> = plan.iter().map(|&(_, len, sd)| pattern(sd, len)).collect();
    let mut got: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n as usize];
    let mut buf = rbuf(maxlen);
    let mut bytes_in = 0usize;
    comm.scope(|s| -> R {
        step("random: posting sends");
        let reqs = msgs
            .iter()
            .zip(&plan)
            .map(|(m, &(d, _, _))| s.isend(m, d, 2))
            .collect::<tocsin::Result<Vec<_>>>()
            .ctx("isend")?;
        for k in 0..incoming {
            step(format!("random: receiving message {k} of {incoming}"));
            let st = comm
                .recv(&mut buf[..maxlen], ANY_SOURCE, 2)
                .ctx(format!("recv #{k}"))?;
            let src = st.source;
            ensure!(
                src < n && src != me && st.tag == 2,
                "recv #{k}: status {st:?}"
            );
            let sq = got[src as usize].len() as u64;
            ensure!(
                sq < expect[src as usize],
                "more than the {} announced messages from {src}",
                expect[src as usize]
            );
            let want = pattern(seed(&[14, src as u64, me as u64, sq]), st.len);
            same_bytes(
                &format!("message {sq} from {src} ({} bytes)", st.len),
                &buf[..st.len],
                &want,
            )?;
            check_untouched(&format!("message {sq} from {src}"), &buf, st.len)?;
            buf[..st.len].fill(SENTINEL);
            bytes_in += st.len;
            got[src as usize].push((st.len as u64, checksum(&want)));
        }
        step("random: waiting for the sends");
        wait_all(reqs).ctx("wait_all of the sends")?;
        Ok(())
    })?;
    // 3. Exchange per-message (length, checksum) lists and compare.
    step("random: exchanging checksums");
    let mut summaries: Vec<Vec<u64>> = vec![Vec::new(); n as usize];
    for ((d, len, sd), m) in plan.iter().zip(&msgs) {
        ensure!(m.len() == *len && *sd != 0, "plan mismatch");
        summaries[*d as usize].extend([*len as u64, checksum(m)]);
    }
    let mut theirs: Vec<Vec<u64>> = (0..n)
        .map(|s| vec![0u64; 2 * expect[s as usize] as usize])
        .collect();
    comm.scope(|s| -> R {
        let mut reqs = Vec::new();
        for (r, b) in theirs.iter_mut().enumerate() {
            if r as Rank != me {
                reqs.push(s.irecv(b, r as Rank, 3).ctx("irecv summary")?);
            }
        }
        for (d, sm) in summaries.iter().enumerate() {
            if d as Rank != me {
                reqs.push(s.isend(sm, d as Rank, 3).ctx("isend summary")?);
            }
        }
        wait_all(reqs).ctx("summary exchange")?;
        Ok(())
    })?;
    for src in (0..n).filter(|&s| s != me) {
        let g = &got[src as usize];
        let t = &theirs[src as usize];
        ensure!(
            g.len() as u64 == expect[src as usize],
            "received {} messages from {src}, it announced {}",
            g.len(),
            expect[src as usize]
        );
        for (i, (&(len, sum), pair)) in g.iter().zip(t.chunks_exact(2)).enumerate() {
            ensure!(
                len == pair[0] && sum == pair[1],
                "message {i} from {src}: received {len} bytes checksum {sum:#x}, \
                 sender says {} bytes checksum {:#x}",
                pair[0],
                pair[1]
            );
        }
    }
    let bytes_out: usize = plan.iter().map(|p| p.1).sum();
    comm.barrier().ctx("final barrier")?;
    println!(
        "random rank {me}: sent {} messages ({bytes_out} B), received {incoming} ({bytes_in} B), {:.2} s",
        plan.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// probe

fn case_probe(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let a = pattern(seed(&[15, 1]), 100);
    let b = pattern(seed(&[15, 2]), 4 * e);
    step("probe: nothing pending");
    if me == 1 {
        let r = comm.iprobe(ANY_SOURCE, ANY_TAG).ctx("iprobe")?;
        ensure!(r.is_none(), "iprobe before anything was sent: {r:?}");
    }
    comm.barrier().ctx("barrier 1")?;
    // The barrier's own messages must not be visible to iprobe.
    let r = comm
        .iprobe(ANY_SOURCE, ANY_TAG)
        .ctx("iprobe after barrier")?;
    ensure!(r.is_none(), "iprobe sees a message after a barrier: {r:?}");
    comm.barrier().ctx("barrier 2")?;
    if me == 0 {
        comm.scope(|s| -> R {
            let q1 = s.isend(&a, 1, 3).ctx("isend a")?;
            let q2 = s.isend(&b, 1, 4).ctx("isend b")?;
            let q3 = s.isend(&[0u8; 0], 1, 5).ctx("isend empty")?;
            comm.barrier().ctx("barrier 3")?;
            wait_all(vec![q1, q2, q3]).ctx("sends")?;
            Ok(())
        })?;
    } else if me == 1 {
        step("probe: probing");
        let want_a = Status {
            source: 0,
            tag: 3,
            len: a.len(),
        };
        let want_b = Status {
            source: 0,
            tag: 4,
            len: b.len(),
        };
        let want_c = Status {
            source: 0,
            tag: 5,
            len: 0,
        };
        let st = comm.probe(0, 4).ctx("probe(0, 4)")?;
        ensure!(st == want_b, "probe(0, 4) = {st:?}, expected {want_b:?}");
        let st = comm.probe(ANY_SOURCE, ANY_TAG).ctx("probe(ANY, ANY)")?;
        ensure!(
            st == want_a,
            "probe(ANY, ANY) = {st:?}, expected the oldest {want_a:?}"
        );
        let st = comm
            .probe(ANY_SOURCE, ANY_TAG)
            .ctx("probe(ANY, ANY) again")?;
        ensure!(
            st == want_a,
            "second probe(ANY, ANY) = {st:?}: the message was not left"
        );
        let st = wait_arrival(comm, 0, 5)?;
        ensure!(st == want_c, "iprobe(0, 5) = {st:?}, expected {want_c:?}");
        let st = comm.iprobe(0, ANY_TAG).ctx("iprobe(0, ANY)")?;
        ensure!(st == Some(want_a), "iprobe(0, ANY_TAG) = {st:?}");
        let st = comm.probe(ANY_SOURCE, 4).ctx("probe(ANY, 4)")?;
        ensure!(st == want_b, "probe(ANY, 4) = {st:?}");
        if n > 2 {
            let st = comm.iprobe(2, ANY_TAG).ctx("iprobe(2, ANY)")?;
            ensure!(
                st.is_none(),
                "iprobe(2, ANY_TAG) found {st:?}, rank 2 sent nothing"
            );
        }
        let st = comm.iprobe(0, 6).ctx("iprobe(0, 6)")?;
        ensure!(st.is_none(), "iprobe(0, 6) found {st:?}");
        // Receive B (by tag, out of order) with a buffer of exactly the probed size.
        let mut bb = rbuf(want_b.len);
        let st = comm.recv(&mut bb[..want_b.len], 0, 4).ctx("recv(0, 4)")?;
        check_recv("probed rendezvous message", &st, &bb, 0, 4, &b)?;
        let st = comm.iprobe(0, 4).ctx("iprobe(0, 4) after recv")?;
        ensure!(st.is_none(), "iprobe(0, 4) after it was received: {st:?}");
        let st = comm.probe(ANY_SOURCE, ANY_TAG).ctx("probe after recv")?;
        ensure!(
            st == want_a,
            "probe(ANY, ANY) after receiving tag 4 = {st:?}"
        );
        let mut ba = rbuf(a.len());
        let st = comm
            .recv(&mut ba[..a.len()], ANY_SOURCE, ANY_TAG)
            .ctx("recv A")?;
        check_recv("probed eager message", &st, &ba, 0, 3, &a)?;
        let mut bc = rbuf(0);
        let st = comm.recv(&mut bc[..0], 0, 5).ctx("recv C")?;
        check_recv("probed empty message", &st, &bc, 0, 5, &[])?;
        let st = comm.iprobe(ANY_SOURCE, ANY_TAG).ctx("final iprobe")?;
        ensure!(st.is_none(), "iprobe after everything was received: {st:?}");
        comm.barrier().ctx("barrier 3")?;
    } else {
        comm.barrier().ctx("barrier 3")?;
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// errors

/// Checks configuration errors before `tocsin::init` (does not touch PMI).
fn errors_before_init() -> R {
    let r = Config::default().ring_bytes(1000).init();
    expect_err(
        "ring_bytes(1000)",
        r,
        |e| {
            matches!(
                e,
                Error::Config {
                    name: "TOCSIN_RING_BYTES",
                    ..
                }
            )
        },
        "Error::Config for TOCSIN_RING_BYTES",
    )?;
    let r = Config::default().chunk_bytes(1).init();
    expect_err(
        "chunk_bytes(1)",
        r,
        |e| {
            matches!(
                e,
                Error::Config {
                    name: "TOCSIN_CHUNK_BYTES",
                    ..
                }
            )
        },
        "Error::Config for TOCSIN_CHUNK_BYTES",
    )?;
    ensure!(
        "nonsense".parse::<tocsin::ProgressMode>().is_err(),
        "an unknown progress mode parses"
    );
    Ok(())
}

fn case_errors(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    step("errors: second init");
    expect_err(
        "second tocsin::init",
        tocsin::init(),
        |e| matches!(e, Error::AlreadyInitialized),
        "Error::AlreadyInitialized",
    )?;
    let data = [1u8, 2, 3];
    let mut buf = [0u8; 8];
    let inv_rank = |r: Rank| move |e: &Error| matches!(e, Error::InvalidRank { rank, size } if *rank == r && *size == n);
    let inv_tag = |t: Tag| move |e: &Error| matches!(e, Error::InvalidTag { tag } if *tag == t);
    let any_src = |e: &Error| matches!(e, Error::AnySourceOnSend);
    step("errors: blocking calls");
    for bad in [n, n + 1, u32::MAX - 1] {
        expect_err(
            &format!("send to {bad}"),
            comm.send(&data, bad, 0),
            inv_rank(bad),
            "InvalidRank",
        )?;
        expect_err(
            &format!("recv from {bad}"),
            comm.recv(&mut buf, bad, 0),
            inv_rank(bad),
            "InvalidRank",
        )?;
        expect_err(
            &format!("probe {bad}"),
            comm.probe(bad, 0),
            inv_rank(bad),
            "InvalidRank",
        )?;
        expect_err(
            &format!("iprobe {bad}"),
            comm.iprobe(bad, ANY_TAG),
            inv_rank(bad),
            "InvalidRank",
        )?;
    }
    for bad in [-1, -2, i32::MIN] {
        expect_err(
            &format!("send tag {bad}"),
            comm.send(&data, 0, bad),
            inv_tag(bad),
            "InvalidTag",
        )?;
    }
    for bad in [-2, -100, i32::MIN] {
        expect_err(
            &format!("recv tag {bad}"),
            comm.recv(&mut buf, 0, bad),
            inv_tag(bad),
            "InvalidTag",
        )?;
        expect_err(
            &format!("probe tag {bad}"),
            comm.probe(ANY_SOURCE, bad),
            inv_tag(bad),
            "InvalidTag",
        )?;
        expect_err(
            &format!("iprobe tag {bad}"),
            comm.iprobe(0, bad),
            inv_tag(bad),
            "InvalidTag",
        )?;
    }
    expect_err(
        "send to ANY_SOURCE",
        comm.send(&data, ANY_SOURCE, 0),
        any_src,
        "AnySourceOnSend",
    )?;
    expect_err(
        "sendrecv from an invalid rank",
        comm.sendrecv(&data, me, 0, &mut buf, n, 0),
        inv_rank(n),
        "InvalidRank",
    )?;
    step("errors: non-blocking calls");
    comm.scope(|s| -> R {
        expect_err(
            "isend to n",
            s.isend(&data, n, 0),
            inv_rank(n),
            "InvalidRank",
        )?;
        expect_err(
            "isend ANY_SOURCE",
            s.isend(&data, ANY_SOURCE, 0),
            any_src,
            "AnySourceOnSend",
        )?;
        expect_err(
            "isend tag -1",
            s.isend(&data, 0, ANY_TAG),
            inv_tag(-1),
            "InvalidTag",
        )?;
        Ok(())
    })?;
    comm.scope(|s| -> R {
        expect_err(
            "irecv from n",
            s.irecv(&mut buf, n, 0),
            inv_rank(n),
            "InvalidRank",
        )?;
        Ok(())
    })?;
    comm.scope(|s| -> R {
        expect_err(
            "irecv tag -7",
            s.irecv(&mut buf, ANY_SOURCE, -7),
            inv_tag(-7),
            "InvalidTag",
        )?;
        Ok(())
    })?;
    // Error messages name the offending values.
    let m = Error::InvalidRank { rank: 99, size: 4 }.to_string();
    ensure!(
        m.contains("99") && m.contains('4'),
        "InvalidRank message {m:?}"
    );
    // The failed calls left nothing behind: no message was sent.
    comm.barrier().ctx("barrier after errors")?;
    let st = comm.iprobe(ANY_SOURCE, ANY_TAG).ctx("iprobe")?;
    ensure!(st.is_none(), "a failed call sent something: {st:?}");
    comm.barrier().ctx("barrier after the check")?;
    // The library still works: a ring exchange, small and rendezvous.
    step("errors: ring exchange afterwards");
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    for len in [5, 3 * eager(comm)] {
        let out = pattern(seed(&[16, me as u64, len as u64]), len);
        let mut inb = rbuf(len);
        let st = comm
            .sendrecv(&out, next, 9, &mut inb[..len], prev, 9)
            .ctx("sendrecv after errors")?;
        let want = pattern(seed(&[16, prev as u64, len as u64]), len);
        check_recv("ring after errors", &st, &inb, prev, 9, &want)?;
    }
    comm.barrier().ctx("final barrier")
}

/// `sendrecv` with an invalid destination must fail at once, leaving no receive posted
/// behind (a stale receive would hang the call or swallow the next message).
fn case_errors_sendrecv(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let peer = (me + 1) % n;
    let from = (me + n - 1) % n;
    let data = [1u8, 2, 3];
    let mut buf = rbuf(8);
    step("errors-sendrecv: sendrecv to ANY_SOURCE");
    let t0 = Instant::now();
    expect_err(
        "sendrecv to ANY_SOURCE",
        comm.sendrecv(&data, ANY_SOURCE, 0, &mut buf[..8], from, 0),
        |e| matches!(e, Error::AnySourceOnSend),
        "AnySourceOnSend",
    )?;
    step("errors-sendrecv: sendrecv to an invalid rank");
    expect_err(
        "sendrecv to rank n",
        comm.sendrecv(&data, n, 0, &mut buf[..8], from, 0),
        |e| matches!(e, Error::InvalidRank { .. }),
        "InvalidRank",
    )?;
    step("errors-sendrecv: sendrecv with send tag -1");
    expect_err(
        "sendrecv with send tag -1",
        comm.sendrecv(&data, peer, -1, &mut buf[..8], from, 0),
        |e| matches!(e, Error::InvalidTag { tag: -1 }),
        "InvalidTag",
    )?;
    ensure!(
        t0.elapsed() < Duration::from_secs(2),
        "failing sendrecv calls took {:?}",
        t0.elapsed()
    );
    // The next message with that envelope must reach a new receive.
    step("errors-sendrecv: a message afterwards");
    comm.barrier().ctx("barrier")?;
    let out = pattern(seed(&[25, me as u64]), 8);
    let want = pattern(seed(&[25, from as u64]), 8);
    let mut inb = rbuf(8);
    let st = comm
        .sendrecv(&out, peer, 0, &mut inb[..8], from, 0)
        .ctx("sendrecv after the failed ones")?;
    check_recv(
        "message after the failed sendrecv calls",
        &st,
        &inb,
        from,
        0,
        &want,
    )?;
    check_untouched("the failed calls' receive buffer", &buf, 0)?;
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// sendrecv

fn case_sendrecv(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let sizes = [0, 7, e, e + 1, 300_000];
    for k in 0..n {
        let dest = (me + k) % n;
        let src = (me + n - k) % n;
        for (si, &len) in sizes.iter().enumerate() {
            let tag = (k * 10 + si as u32) as Tag;
            let what = format!("sendrecv shift {k}: {len} bytes to {dest}, from {src}");
            step(what.clone());
            let out = pattern(seed(&[17, me as u64, dest as u64, len as u64]), len);
            let want = pattern(seed(&[17, src as u64, me as u64, len as u64]), len);
            let mut inb = rbuf(len);
            let st = comm
                .sendrecv(&out, dest, tag, &mut inb[..len], src, tag)
                .ctx(&what)?;
            check_recv(&what, &st, &inb, src, tag, &want)?;
            // Same with ANY_SOURCE: one message per rank and tag, so the status tells who.
            let mut inb = rbuf(len);
            let st = comm
                .sendrecv(
                    &out,
                    dest,
                    tag + 5000,
                    &mut inb[..len],
                    ANY_SOURCE,
                    tag + 5000,
                )
                .ctx(format!("{what} (ANY_SOURCE)"))?;
            check_recv(
                &format!("{what} (ANY_SOURCE)"),
                &st,
                &inb,
                src,
                tag + 5000,
                &want,
            )?;
        }
    }
    // Typed buffers: u32 out, u32 in, counted in elements.
    step("sendrecv: u32 ring");
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    let out: Vec<u32> = (0..100_000u32)
        .map(|i| i.wrapping_mul(2654435761) ^ me)
        .collect();
    let mut inb = vec![0u32; 100_000];
    let st = comm
        .sendrecv(&out, next, 7, &mut inb, prev, 7)
        .ctx("u32 ring")?;
    ensure!(
        st.count::<u32>() == 100_000 && st.source == prev,
        "u32 ring status {st:?}"
    );
    ensure!(
        inb.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u32).wrapping_mul(2654435761) ^ prev),
        "u32 ring: wrong contents"
    );
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// waitany / test / wait_all

fn case_waitany(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let len_of = |r: Rank, t: u32| {
        if t == 0 {
            10 + r as usize
        } else {
            2 * e + r as usize
        }
    };
    let data_of = |r: Rank, t: u32| pattern(seed(&[18, r as u64, t as u64]), len_of(r, t));

    // A: wait_any over receives from every other rank (small and rendezvous).
    step("waitany A: wait_any");
    if me == 0 {
        let keys: Vec<(Rank, u32)> = (1..n).flat_map(|r| [(r, 0), (r, 1)]).collect();
        let mut bufs: Vec<Vec<u8>> = keys.iter().map(|&(r, t)| rbuf(len_of(r, t))).collect();
        let sts = comm.scope(|s| -> R<Vec<Option<Status>>> {
            let mut reqs = keys
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&(r, t), b)| {
                    let l = len_of(r, t);
                    s.irecv(&mut b[..l], r, 10 + t as Tag)
                })
                .collect::<tocsin::Result<Vec<_>>>()
                .ctx("irecv")?;
            comm.barrier().ctx("barrier")?;
            let mut sts = vec![None; keys.len()];
            while let Some((i, st)) = wait_any(&mut reqs).ctx("wait_any")? {
                ensure!(i < keys.len(), "wait_any returned index {i}");
                ensure!(sts[i].is_none(), "wait_any returned index {i} twice");
                ensure!(
                    reqs[i].is_complete(),
                    "request {i} returned but not complete"
                );
                sts[i] = Some(st);
            }
            let again = wait_any(&mut reqs).ctx("wait_any after all done")?;
            ensure!(
                again.is_none(),
                "wait_any with no active request: {again:?}"
            );
            Ok(sts)
        })?;
        for (i, &(r, t)) in keys.iter().enumerate() {
            let st = sts[i].ok_or_else(|| format!("request {i} never returned by wait_any"))?;
            check_recv(
                &format!("wait_any request {i}"),
                &st,
                &bufs[i],
                r,
                10 + t as Tag,
                &data_of(r, t),
            )?;
        }
        let mut none: Vec<tocsin::Request<'_>> = Vec::new();
        ensure!(
            wait_any(&mut none).ctx("wait_any([])")?.is_none(),
            "wait_any of no request"
        );
    } else {
        comm.barrier().ctx("barrier")?;
        // Later ranks send sooner, so completions come in a different order than posted.
        std::thread::sleep(Duration::from_millis(20 * (n - me) as u64));
        comm.send(&data_of(me, 1), 0, 11).ctx("send rendezvous")?;
        comm.send(&data_of(me, 0), 0, 10).ctx("send eager")?;
    }
    comm.barrier().ctx("barrier")?;

    // B: Request::test on receives (eager, rendezvous) and on a rendezvous send.
    step("waitany B: test");
    let small = pattern(seed(&[19, 1]), 50);
    let big = pattern(seed(&[19, 2]), 3 * e);
    let deadline = |t0: Instant, what: &str| -> R {
        ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "{what}: test() still None after 20 s"
        );
        Ok(())
    };
    if me == 1 {
        let mut bs = rbuf(small.len());
        let mut bb = rbuf(big.len());
        let (s1, s2) = comm.scope(|s| -> R<(Status, Status)> {
            let mut r1 = s.irecv(&mut bs[..small.len()], 0, 20).ctx("irecv 20")?;
            let mut r2 = s.irecv(&mut bb[..big.len()], 0, 21).ctx("irecv 21")?;
            let t = r1.test().ctx("test before send")?;
            ensure!(
                t.is_none(),
                "test() of a receive nothing matches yet: {t:?}"
            );
            ensure!(!r2.is_complete(), "is_complete of an unmatched receive");
            comm.barrier().ctx("barrier")?;
            let t0 = Instant::now();
            let (mut a, mut b) = (None, None);
            while a.is_none() || b.is_none() {
                if a.is_none() {
                    a = r1.test().ctx("test 20")?;
                }
                if b.is_none() {
                    b = r2.test().ctx("test 21")?;
                }
                deadline(t0, "receives")?;
                std::thread::yield_now();
            }
            ensure!(
                r1.is_complete() && r2.is_complete(),
                "is_complete after test"
            );
            Ok((a.unwrap(), b.unwrap()))
        })?;
        check_recv("test eager", &s1, &bs, 0, 20, &small)?;
        check_recv("test rendezvous", &s2, &bb, 0, 21, &big)?;
        // Then a blocking receive, late, for rank 0's tested isend.
        std::thread::sleep(Duration::from_millis(50));
        let mut bb = rbuf(big.len());
        let st = comm.recv(&mut bb[..big.len()], 0, 22).ctx("recv 22")?;
        check_recv("receive of a tested send", &st, &bb, 0, 22, &big)?;
    } else if me == 0 {
        comm.barrier().ctx("barrier")?;
        comm.send(&small, 1, 20).ctx("send 20")?;
        comm.send(&big, 1, 21).ctx("send 21")?;
        let st = comm.scope(|s| -> R<Status> {
            let mut q = s.isend(&big, 1, 22).ctx("isend 22")?;
            let t0 = Instant::now();
            loop {
                if let Some(st) = q.test().ctx("test of isend")? {
                    return Ok(st);
                }
                deadline(t0, "rendezvous isend")?;
                std::thread::yield_now();
            }
        })?;
        ensure!(
            st.source == 0 && st.tag == 22 && st.len == big.len(),
            "status of a completed send: {st:?}"
        );
    } else {
        comm.barrier().ctx("barrier")?;
    }
    comm.barrier().ctx("barrier")?;

    // C: wait_all over a full exchange (every rank with every other), statuses in order.
    step("waitany C: wait_all exchange");
    {
        let peers: Vec<Rank> = (0..n).filter(|&r| r != me).collect();
        let len_c = |from: Rank, to: Rank| {
            100 + (from as usize * 7919 + to as usize * 104729) % (3 * e + 1)
        };
        let outs: Vec<Vec<u8>> = peers
            .iter()
            .map(|&p| pattern(seed(&[20, me as u64, p as u64]), len_c(me, p)))
            .collect();
        let mut ins: Vec<Vec<u8>> = peers.iter().map(|&p| rbuf(len_c(p, me))).collect();
        let sts = comm.scope(|s| -> R<Vec<Status>> {
            let mut reqs = Vec::new();
            for (&p, b) in peers.iter().zip(ins.iter_mut()) {
                let l = len_c(p, me);
                reqs.push(s.irecv(&mut b[..l], p, 30).ctx("irecv")?);
            }
            for (&p, o) in peers.iter().zip(&outs) {
                reqs.push(s.isend(o, p, 30).ctx("isend")?);
            }
            wait_all(reqs).ctx("wait_all")
        })?;
        ensure!(
            sts.len() == 2 * peers.len(),
            "wait_all returned {} statuses",
            sts.len()
        );
        for (i, &p) in peers.iter().enumerate() {
            let want = pattern(seed(&[20, p as u64, me as u64]), len_c(p, me));
            check_recv(
                &format!("wait_all receive from {p}"),
                &sts[i],
                &ins[i],
                p,
                30,
                &want,
            )?;
            let sst = sts[peers.len() + i];
            ensure!(
                sst.tag == 30 && sst.len == len_c(me, p),
                "wait_all send status {i}: {sst:?}"
            );
        }
    }
    comm.barrier().ctx("barrier")?;

    // D: wait_all with a truncating receive among others: the error is returned, and the
    // other requests still complete.
    step("waitany D: wait_all with a truncated request");
    let m30 = pattern(seed(&[21, 0]), 100);
    let m31 = pattern(seed(&[21, 1]), 60);
    let m32 = pattern(seed(&[21, 2]), 2 * e + 1);
    if me == 0 {
        let mut b0 = rbuf(10);
        let mut b1 = rbuf(m31.len());
        let mut b2 = rbuf(m32.len());
        let r = comm.scope(|s| -> tocsin::Result<Vec<Status>> {
            let r0 = s.irecv(&mut b0[..10], 1, 40)?;
            let r1 = s.irecv(&mut b1[..m31.len()], 1, 41)?;
            let r2 = s.irecv(&mut b2[..m32.len()], 1, 42)?;
            wait_all(vec![r0, r1, r2])
        });
        ensure!(
            matches!(
                r,
                Err(Error::Truncated {
                    message_len: 100,
                    buffer_len: 10,
                    from: 1,
                    tag: 40
                })
            ),
            "wait_all with a truncating receive: {r:?}"
        );
        same_bytes("truncated prefix", &b0[..10], &m30[..10])?;
        check_untouched("truncated", &b0, 10)?;
        same_bytes("request after the truncated one", &b1[..m31.len()], &m31)?;
        same_bytes("rendezvous after the truncated one", &b2[..m32.len()], &m32)?;
    } else if me == 1 {
        comm.send(&m30, 0, 40).ctx("send 40")?;
        comm.send(&m31, 0, 41).ctx("send 41")?;
        comm.send(&m32, 0, 42).ctx("send 42")?;
    }
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// die

fn case_die(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    comm.barrier().ctx("barrier")?;
    if me == 1 {
        step("die: rank 1 sends its pid and exits");
        comm.send(&[std::process::id() as u64], 0, 1)
            .ctx("send pid")?;
        println!("ok die rank 1/{n} (exiting at once, without finalizing)");
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    if me == 0 {
        // Let rank 1 die first: its last message must still be delivered.
        std::thread::sleep(Duration::from_millis(300));
        step("die: receiving rank 1's last message");
        let mut pid = [0u64; 1];
        let st = comm
            .recv(&mut pid, 1, 1)
            .ctx("the message rank 1 sent before exiting")?;
        ensure!(st.source == 1 && st.len == 8, "status {st:?}");
        step("die: recv from the dead rank");
        let t0 = Instant::now();
        let mut buf = [0u8; 16];
        let r = comm.recv(&mut buf, 1, 2);
        let took = t0.elapsed();
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, pid: p, me: 0 }) if p as u64 == pid[0]),
            "recv from the dead rank 1 (pid {}): got {r:?}, expected PeerDied",
            pid[0]
        );
        ensure!(took < Duration::from_secs(5), "PeerDied took {took:?}");
        println!(
            "die: rank 0 saw PeerDied after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        step("die: rendezvous send to the dead rank");
        let big = vec![7u8; 4 * e];
        let t0 = Instant::now();
        let r = comm.send(&big, 1, 3);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "rendezvous send to the dead rank: got {r:?}, expected PeerDied"
        );
        ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "send PeerDied took {:?}",
            t0.elapsed()
        );
        step("die: non-blocking receive from the dead rank");
        let r = comm.scope(|s| s.irecv(&mut buf, 1, 4)?.wait());
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "irecv from the dead rank: got {r:?}"
        );
        step("die: iprobe / probe of the dead rank");
        let r = comm.iprobe(1, ANY_TAG);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "iprobe(1, ANY_TAG) of the dead rank: got {r:?}"
        );
        let r = comm.probe(1, 5);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "probe(1, 5) of the dead rank: got {r:?}"
        );
        // The other ranks still talk to us.
        for s in 2..n {
            step(format!("die: receiving from live rank {s}"));
            let mut b = rbuf(3 * e);
            let want = pattern(seed(&[22, s as u64]), 3 * e);
            let st = comm
                .recv(&mut b[..3 * e], s, 6)
                .ctx(format!("recv from live rank {s}"))?;
            check_recv("live rank after a death", &st, &b, s, 6, &want)?;
            comm.send(&[1u8], s, 7)
                .ctx(format!("send to live rank {s}"))?;
        }
    } else {
        step("die: live rank talking to rank 0");
        let want = pattern(seed(&[22, me as u64]), 3 * e);
        comm.send(&want, 0, 6).ctx("send to rank 0")?;
        let mut b = [0u8; 1];
        comm.recv(&mut b, 0, 7).ctx("recv from rank 0")?;
        let mut buf = [0u8; 4];
        let r = comm.recv(&mut buf, 1, 2);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "recv from the dead rank 1 on rank {me}: got {r:?}"
        );
    }
    Ok(())
}

/// The last rank's host vanishes without a FIN or a reset; rank 0, waiting on it, must get
/// `PeerDied` within seconds (keepalive and `TCP_USER_TIMEOUT`, no polling thread).
fn case_vanish(comm: &Comm, cut: &str) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let last = n - 1;
    ensure!(
        comm.transport(last).ctx("transport")? == "tcp" || me == last,
        "rank {last} must be on another node (its transport is {:?})",
        comm.transport(last)
    );
    comm.barrier().ctx("barrier")?;
    if me == last {
        step("vanish: exchanging once, then cutting the host off");
        comm.send(&[1u8; 8], 0, 1).ctx("send")?;
        // Said before the cut: nothing this rank prints afterwards reaches the launcher.
        println!("ok vanish rank {me}/{n} (cutting the host off)");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(300));
        let st = std::process::Command::new("sh")
            .args(["-c", cut])
            .status()
            .map_err(|e| format!("running {cut:?}: {e}"))?;
        ensure!(st.success(), "{cut:?} failed: {st}");
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    }
    if me == 0 {
        let mut b = [0u8; 8];
        comm.recv(&mut b, last, 1).ctx("recv before the cut")?;
        step("vanish: waiting on the vanished rank");
        let t0 = Instant::now();
        let r = comm.recv(&mut b, last, 2);
        let took = t0.elapsed();
        ensure!(
            matches!(r, Err(Error::PeerDied { rank, .. }) if rank == last),
            "recv from the vanished rank {last}: got {r:?}, expected PeerDied"
        );
        ensure!(took < Duration::from_secs(30), "PeerDied took {took:?}");
        println!(
            "vanish: rank 0 saw PeerDied after {:.1} s",
            took.as_secs_f64()
        );
        println!("ok vanish rank 0/{n}");
        let _ = std::io::stdout().flush();
        // The job cannot end normally (the last rank's host is gone): leave at once.
        std::process::exit(0);
    }
    Ok(())
}

/// Prints which transport serves each peer.
fn case_transports(comm: &Comm) -> R {
    comm.barrier().ctx("barrier")?;
    let (me, n) = (comm.rank(), comm.size());
    let list: Vec<String> = (0..n)
        .map(|p| Ok(format!("{p}={}", comm.transport(p).ctx("transport")?)))
        .collect::<R<_>>()?;
    println!("transports rank {me}: {}", list.join(" "));
    comm.barrier().ctx("barrier")?;
    println!("ok transports rank {me}/{n}");
    Ok(())
}

/// A message that arrived (unexpected) before its sender died can still be received:
/// rank 1 sends tag 1 and exits; rank 0 first waits for tag 2 from rank 1 (so the tag 1
/// message is drained into the unexpected queue, then the death is noticed), then receives
/// tag 1.
fn case_die_watcher_busy(comm: &Comm) -> R {
    need_ranks(comm, 3)?;
    let (me, n) = (comm.rank(), comm.size());
    let last = n - 1;
    comm.barrier().ctx("barrier")?;
    if me == last {
        println!("ok die-watcher-busy rank {me}/{n} (exiting at once, without finalizing)");
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    if me == last - 1 {
        step("die-watcher-busy: computing 6 s without calling tocsin");
        std::thread::sleep(Duration::from_secs(6));
        comm.send(&[me as u64], 0, 9).ctx("send after computing")?;
    } else if me == 0 {
        step("die-watcher-busy: recv from the dead rank");
        let t0 = Instant::now();
        let mut buf = [0u8; 8];
        let r = comm.recv(&mut buf, last, 1);
        let took = t0.elapsed();
        ensure!(
            matches!(r, Err(Error::PeerDied { rank, .. }) if rank == last),
            "recv from the dead rank {last}: got {r:?}, expected PeerDied"
        );
        ensure!(
            took < Duration::from_secs(5),
            "PeerDied took {took:?} (its watcher was computing)"
        );
        println!(
            "die-watcher-busy: rank 0 saw PeerDied after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        step("die-watcher-busy: ANY_SOURCE receive from the busy rank");
        let mut v = [0u64; 1];
        let st = comm
            .recv(&mut v, ANY_SOURCE, 9)
            .ctx("ANY_SOURCE after the death")?;
        ensure!(
            st.source == last - 1 && v[0] == (last - 1) as u64,
            "status {st:?}"
        );
    }
    println!("ok die-watcher-busy rank {me}/{n}");
    Ok(())
}

fn case_die_unexpected(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let data = pattern(seed(&[31]), 100);
    comm.barrier().ctx("barrier")?;
    if me == 1 {
        comm.send(&data, 0, 1).ctx("send")?;
        println!("ok die-unexpected rank 1/{n} (exiting at once)");
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    if me == 0 {
        step("die-unexpected: waiting for a message rank 1 never sends");
        let mut buf = rbuf(100);
        let r = comm.recv(&mut buf[..100], 1, 2);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "recv(1, 2): {r:?}, expected PeerDied"
        );
        step("die-unexpected: receiving the message rank 1 sent before dying");
        let r = comm.recv(&mut buf[..100], 1, 1);
        let st =
            r.ctx("recv(1, 1) of the message rank 1 sent (and rank 0 received) before it died")?;
        check_recv("message sent before the death", &st, &buf, 1, 1, &data)?;
    }
    Ok(())
}

/// Rank 1 posts a large rendezvous send and exits at once: rank 0's receive must end
/// (either with the right bytes, if it copied them before rank 1 was gone, or with
/// `PeerDied`), never hang or deliver wrong bytes.
fn case_die_rendezvous(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let big = pattern(seed(&[28]), BIG);
    comm.barrier().ctx("barrier")?;
    let big2 = pattern(seed(&[29]), BIG);
    if me == 1 {
        step("die-rendezvous: isend then exit");
        comm.scope(|s| -> R {
            let _q1 = s.isend(&big, 0, 1).ctx("isend")?;
            let _q2 = s.isend(&big2, 0, 3).ctx("isend")?;
            println!("ok die-rendezvous rank 1/{n} (exiting with sends in flight)");
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        })?;
    } else if me == 0 {
        step("die-rendezvous: receiving from the dying rank");
        let mut buf = rbuf(BIG);
        let t0 = Instant::now();
        let r = comm.recv(&mut buf[..BIG], 1, 1);
        let took = t0.elapsed();
        match r {
            Ok(st) => {
                check_recv("rendezvous from a rank that exited", &st, &buf, 1, 1, &big)?;
                println!("die-rendezvous: the message arrived whole before rank 1 was gone");
            }
            Err(Error::PeerDied { rank: 1, .. }) => {
                println!(
                    "die-rendezvous: PeerDied after {:.0} ms",
                    took.as_secs_f64() * 1e3
                );
            }
            Err(e) => return Err(fail(format!("recv from the dying rank: {e:?}"))),
        }
        ensure!(took < Duration::from_secs(5), "the receive took {took:?}");
        // Its second rendezvous was announced before it died, but the data is gone now.
        std::thread::sleep(Duration::from_millis(300));
        step("die-rendezvous: receiving the second message from the dead rank");
        let t0 = Instant::now();
        let r = comm.recv(&mut buf[..BIG], 1, 3);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "recv of a rendezvous announced by a rank that is now dead: {r:?}"
        );
        ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t0.elapsed()
        );
        let r = comm.recv(&mut buf[..16], 1, 2);
        ensure!(
            matches!(r, Err(Error::PeerDied { rank: 1, .. })),
            "recv after rank 1 exited: {r:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// sleepy: long waits, woken by the peer; CPU used while waiting in block mode

use tocsin_cli::testkit::thread_cpu;

/// Runs `f`, returns its result, wall time and the CPU time this thread used.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (w0, c0) = (Instant::now(), thread_cpu());
    let r = f();
    (r, w0.elapsed(), thread_cpu() - c0)
}

fn case_sleepy(comm: &Comm) -> R {
    need_ranks(comm, 2)?;
    let me = comm.rank();
    let e = eager(comm);
    let mode = comm.config().progress_mode();
    // Every mode but poll sleeps while it waits.
    let block = mode != tocsin::ProgressMode::Poll;
    let background = matches!(
        mode,
        tocsin::ProgressMode::Thread | tocsin::ProgressMode::Signal | tocsin::ProgressMode::Uintr
    );
    let nap = Duration::from_millis(400);
    let check_cpu = |what: &str, wall: Duration, cpu: Duration| -> R {
        println!(
            "sleepy rank {me}: {what}: waited {:.0} ms, used {:.0} ms of CPU",
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
        ensure!(
            wall >= nap / 2,
            "{what}: the wait lasted only {wall:?} though the peer slept {nap:?}"
        );
        if block {
            ensure!(
                cpu < wall / 2,
                "{what}: {} mode used {cpu:?} of CPU in a {wall:?} wait",
                mode.name()
            );
        }
        Ok(())
    };
    for (k, len) in [(0, 100), (1, 3 * e + 1), (2, BIG)] {
        let tag = 10 + k;
        let data = pattern(seed(&[30, k as u64]), len);
        step(format!("sleepy: receiver waits for {len} bytes"));
        // 1. The receiver waits in recv while the sender naps.
        comm.barrier().ctx("barrier")?;
        if me == 0 {
            std::thread::sleep(nap);
            comm.send(&data, 1, tag).ctx("send")?;
        } else if me == 1 {
            let mut buf = rbuf(len);
            let (st, wall, cpu) = timed(|| comm.recv(&mut buf[..len], 0, tag));
            let st = st.ctx("recv")?;
            check_recv("late message", &st, &buf, 0, tag, &data)?;
            check_cpu(&format!("recv of {len} bytes"), wall, cpu)?;
        }
        // 2. The sender waits in a rendezvous send while the receiver naps.
        step(format!("sleepy: sender waits, {len} bytes"));
        comm.barrier().ctx("barrier")?;
        if me == 0 {
            let (r, wall, cpu) = timed(|| comm.send(&data, 1, tag + 100));
            r.ctx("send")?;
            if len > e {
                check_cpu(&format!("rendezvous send of {len} bytes"), wall, cpu)?;
            }
        } else if me == 1 {
            std::thread::sleep(nap);
            let mut buf = rbuf(len);
            let st = comm.recv(&mut buf[..len], 0, tag + 100).ctx("recv")?;
            check_recv(
                "message of a waiting sender",
                &st,
                &buf,
                0,
                tag + 100,
                &data,
            )?;
        }
        // 3. A receive is posted, the receiver computes (no calls), then waits.
        step(format!("sleepy: irecv, compute, wait, {len} bytes"));
        comm.barrier().ctx("barrier")?;
        if me == 0 {
            comm.send(&data, 1, tag + 200).ctx("send")?;
        } else if me == 1 {
            let mut buf = rbuf(len);
            let st = comm.scope(|s| -> R<Status> {
                let mut r = s.irecv(&mut buf[..len], 0, tag + 200).ctx("irecv")?;
                std::thread::sleep(nap);
                // Modes that progress in the background finish while the rank computes, up
                // to records that need no answer (EAGER, FIN): those wait for one pass.
                let done = r.is_complete() || r.test().ctx("test")?.is_some();
                ensure!(
                    done || !background,
                    "{} mode: a {len}-byte receive posted before a {nap:?} computation \
                     did not complete during it",
                    mode.name()
                );
                r.wait().ctx("wait")
            })?;
            check_recv("message during computation", &st, &buf, 0, tag + 200, &data)?;
        }
    }
    comm.barrier().ctx("final barrier")
}

/// Minimal background-progress check: rank 1 posts a receive and computes `--compute-ms`
/// (400 ms) without calling tocsin; rank 0 sends (after `--send-after-ms`, 100 ms)
/// `--count` (1) messages of
/// `--len` bytes (100), the first to the posted receive, the others unexpected.
/// The computation must not be starved by the library (under 2 s), and in thread, signal
/// and uintr modes the posted receive must be complete when it ends, or after one progress
/// pass (records that need no answer, EAGER and FIN, do not interrupt a computing rank). With
/// `--barrier` both ranks first pass a barrier (rank 0 entering it `barrier` late); with
/// `--warmup`, rank 0 first sends rank 1 one message of `len` bytes (a nonblocking receive).
fn case_background(
    comm: &Comm,
    len: usize,
    count: usize,
    warmup: bool,
    barrier: Option<Duration>,
    send_after: Duration,
    compute: Duration,
) -> R {
    need_ranks(comm, 2)?;
    let me = comm.rank();
    let mode = comm.config().progress_mode();
    let msg = |i: usize| pattern(seed(&[32, i as u64]), len);
    let count = count.max(1);
    if warmup {
        step("background: warm-up message");
        if me == 0 {
            comm.send(&msg(0), 1, 2).ctx("warm-up send")?;
        } else if me == 1 {
            let mut buf = rbuf(len);
            let st = comm.scope(|s| {
                s.irecv(&mut buf[..len], 0, 2)
                    .ctx("warm-up irecv")?
                    .wait()
                    .ctx("warm-up wait")
            })?;
            check_recv("warm-up message", &st, &buf, 0, 2, &msg(0))?;
        }
    }
    if let Some(late) = barrier {
        if me == 0 {
            std::thread::sleep(late);
        }
        comm.barrier().ctx("barrier")?;
    }
    if me == 0 {
        std::thread::sleep(send_after);
        step("background: sending");
        let ms: Vec<Vec<u8>> = (0..count).map(msg).collect();
        comm.scope(|s| -> R {
            let mut reqs = Vec::new();
            for m in &ms {
                reqs.push(s.isend(m, 1, 1).ctx("isend")?);
            }
            wait_all(reqs).ctx("wait_all of the sends")?;
            Ok(())
        })?;
    } else if me == 1 {
        let mut buf = rbuf(len);
        let (done, st) = comm.scope(|s| -> R<(bool, Status)> {
            let mut r = s.irecv(&mut buf[..len], 0, 1).ctx("irecv")?;
            step("background: computing");
            let (c0, w0) = (thread_cpu(), Instant::now());
            std::thread::sleep(compute);
            let (cpu, wall) = (thread_cpu() - c0, w0.elapsed());
            println!(
                "background: the {compute:?} computation took {:.1} ms wall, {:.1} ms CPU (handlers)",
                wall.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3
            );
            ensure!(
                wall < compute + Duration::from_millis(1600),
                "a {compute:?} computation took {wall:?} ({cpu:?} of CPU in handlers): \
                 interrupts starve the application"
            );
            // Complete already, or after one progress pass: records that need no answer
            // (EAGER, FIN) do not interrupt a computing rank, they wait for its next call;
            // anything that needed work (RTS, CTS, DATA) must have been handled meanwhile.
            let done = r.is_complete() || r.test().ctx("test")?.is_some();
            step("background: wait");
            let t0 = Instant::now();
            let st = r.wait().ctx("wait")?;
            println!(
                "background: the wait after the computation took {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
            Ok((done, st))
        })?;
        check_recv("background message 0", &st, &buf, 0, 1, &msg(0))?;
        for i in 1..count {
            step(format!("background: receiving message {i}"));
            buf.fill(SENTINEL);
            let st = comm.recv(&mut buf[..len], 0, 1).ctx(format!("recv #{i}"))?;
            check_recv(&format!("background message {i}"), &st, &buf, 0, 1, &msg(i))?;
        }
        println!(
            "background: {} mode, {count} x {len} bytes: first complete after the computation: {done}",
            mode.name()
        );
        ensure!(
            done || matches!(
                mode,
                tocsin::ProgressMode::Poll | tocsin::ProgressMode::Block
            ),
            "{} mode: the receive did not complete while the rank computed",
            mode.name()
        );
    }
    step("background: final barrier");
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// threads

fn thread_body(comm: &Comm, t: u32, iters: usize) -> R {
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let sizes = [0, 5, 1000, e, e + 1, 70_000];
    let partner = if me ^ 1 < n { me ^ 1 } else { me };
    let tag = 100 + t as Tag;
    // Ping-pong with the partner rank, blocking calls.
    for i in 0..iters {
        let len = sizes[(i + t as usize) % sizes.len()];
        let out = pattern(seed(&[23, me as u64, t as u64, i as u64]), len);
        let want = pattern(seed(&[23, partner as u64, t as u64, i as u64]), len);
        let mut inb = rbuf(len);
        let what = format!("thread {t} ping-pong #{i} ({len} bytes) with {partner}");
        if partner == me {
            let st = comm
                .sendrecv(&out, me, tag, &mut inb[..len], me, tag)
                .ctx(&what)?;
            check_recv(&what, &st, &inb, me, tag, &want)?;
        } else if me < partner {
            comm.send(&out, partner, tag).ctx(format!("{what}: send"))?;
            let st = comm
                .recv(&mut inb[..len], partner, tag)
                .ctx(format!("{what}: recv"))?;
            check_recv(&what, &st, &inb, partner, tag, &want)?;
        } else {
            let st = comm
                .recv(&mut inb[..len], partner, tag)
                .ctx(format!("{what}: recv"))?;
            check_recv(&what, &st, &inb, partner, tag, &want)?;
            comm.send(&out, partner, tag).ctx(format!("{what}: send"))?;
        }
    }
    // Ring exchange, non-blocking, several messages in flight per thread.
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    let tag = 200 + t as Tag;
    for i in 0..iters / 4 {
        let lens: Vec<usize> = (0..4)
            .map(|k| sizes[(i + k + t as usize) % sizes.len()])
            .collect();
        let outs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(k, &l)| pattern(seed(&[24, me as u64, t as u64, i as u64, k as u64]), l))
            .collect();
        let mut ins: Vec<Vec<u8>> = lens.iter().map(|&l| rbuf(l)).collect();
        let sts = comm.scope(|s| -> R<Vec<Status>> {
            let mut reqs = Vec::new();
            for (b, &l) in ins.iter_mut().zip(&lens) {
                reqs.push(s.irecv(&mut b[..l], prev, tag).ctx("irecv")?);
            }
            for o in &outs {
                reqs.push(s.isend(o, next, tag).ctx("isend")?);
            }
            wait_all(reqs).ctx(format!("thread {t} ring round {i}"))
        })?;
        for k in 0..4 {
            let want = pattern(
                seed(&[24, prev as u64, t as u64, i as u64, k as u64]),
                lens[k],
            );
            check_recv(
                &format!("thread {t} ring round {i} message {k}"),
                &sts[k],
                &ins[k],
                prev,
                tag,
                &want,
            )?;
        }
    }
    Ok(())
}

fn case_threads(comm: &Comm, nthreads: u32, iters: usize) -> R {
    need_ranks(comm, 2)?;
    step("threads: running");
    let results: Vec<R> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..nthreads)
            .map(|t| {
                let c = comm.clone();
                sc.spawn(move || thread_body(&c, t, iters))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail("thread panicked".into())))
            })
            .collect()
    });
    for (t, r) in results.into_iter().enumerate() {
        r.map_err(|m| format!("thread {t}: {m}"))?;
    }
    comm.barrier().ctx("final barrier")
}

/// Threads of one rank talking to each other and split producer/consumer roles:
/// - a thread blocks in `recv` from its own rank while another thread sends to it later
///   (eager and rendezvous): the sleeping receiver must be woken by a self-send;
/// - one thread only sends to the partner rank while another only receives from it.
fn case_threads_cross(comm: &Comm, iters: usize) -> R {
    need_ranks(comm, 2)?;
    let (me, n) = (comm.rank(), comm.size());
    let e = eager(comm);
    let partner = if me ^ 1 < n { me ^ 1 } else { me };
    let sizes = [0, 10, e, e + 1, 200_000];
    let nap = Duration::from_millis(30);
    step("threads-cross: self-sends between threads");
    std::thread::scope(|sc| -> R {
        let rx = sc.spawn(|| -> R {
            for (i, &len) in sizes.iter().enumerate() {
                let want = pattern(seed(&[33, me as u64, i as u64]), len);
                let mut buf = rbuf(len);
                let st = comm
                    .recv(&mut buf[..len], me, 400)
                    .ctx(format!("self recv #{i}"))?;
                check_recv(
                    &format!("cross-thread self message #{i}"),
                    &st,
                    &buf,
                    me,
                    400,
                    &want,
                )?;
            }
            Ok(())
        });
        for (i, &len) in sizes.iter().enumerate() {
            std::thread::sleep(nap); // let the receiver fall asleep first
            let data = pattern(seed(&[33, me as u64, i as u64]), len);
            comm.send(&data, me, 400).ctx(format!("self send #{i}"))?;
        }
        rx.join()
            .unwrap_or_else(|_| Err(fail("receiver thread panicked".into())))
    })?;
    comm.barrier().ctx("barrier")?;
    step("threads-cross: producer and consumer threads");
    std::thread::scope(|sc| -> R {
        let prod = sc.spawn(|| -> R {
            for i in 0..iters {
                let len = sizes[i % sizes.len()];
                let data = pattern(seed(&[34, me as u64, i as u64]), len);
                comm.send(&data, partner, 500)
                    .ctx(format!("producer send #{i}"))?;
            }
            Ok(())
        });
        let cons = sc.spawn(|| -> R {
            let maxlen = *sizes.iter().max().unwrap();
            let mut buf = rbuf(maxlen);
            for i in 0..iters {
                let len = sizes[i % sizes.len()];
                let want = pattern(seed(&[34, partner as u64, i as u64]), len);
                buf.fill(SENTINEL);
                let st = comm
                    .recv(&mut buf[..maxlen], partner, 500)
                    .ctx(format!("consumer recv #{i}"))?;
                check_recv(
                    &format!("consumer message #{i}"),
                    &st,
                    &buf,
                    partner,
                    500,
                    &want,
                )?;
            }
            Ok(())
        });
        prod.join()
            .unwrap_or_else(|_| Err(fail("producer panicked".into())))?;
        cons.join()
            .unwrap_or_else(|_| Err(fail("consumer panicked".into())))
    })?;
    comm.barrier().ctx("final barrier")
}

// ---------------------------------------------------------------------------------------
// hold

fn case_hold(comm: &Comm, secs: u64) -> R {
    comm.barrier().ctx("barrier")?;
    println!("pid {} {}", comm.rank(), std::process::id());
    let _ = std::io::stdout().flush();
    step("hold: sleeping");
    std::thread::sleep(Duration::from_secs(secs));
    comm.barrier().ctx("barrier")
}

// ---------------------------------------------------------------------------------------

/// The options: `--timeout`, then the case with its own options.
#[derive(Parser, Debug)]
#[command(
    name = "tocsin-testrank",
    about = "The point-to-point test program: one case per run (see the source's module doc)"
)]
struct Cli {
    /// Seconds after which the watchdog ends a stuck rank (exit code 3).
    #[arg(long, global = true, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    case: Case,
}

/// The cases (see the module doc for what each checks and the ranks it needs).
#[derive(Subcommand, Debug, Clone)]
enum Case {
    /// Sizes 0, 1, eager−1, eager, eager+1, 4 MiB+3, every order (≥2 ranks).
    Sizes,
    /// ANY_SOURCE / ANY_TAG receives (≥3 ranks).
    Wildcards,
    /// Non-overtaking order (≥2 ranks).
    Ordering,
    /// Receive buffers shorter than the message (≥2 ranks).
    Truncation,
    /// Sends to oneself (≥1 rank).
    #[command(name = "self")]
    SelfSend,
    /// Randomly sized messages to random peers, with checksums (≥2 ranks).
    Random {
        /// Messages in total.
        #[arg(long, default_value_t = 10_000)]
        total: usize,
        /// Largest message, bytes.
        #[arg(long, default_value_t = 200 * 1024)]
        max: usize,
    },
    /// probe / iprobe (≥2 ranks).
    Probe,
    /// Configuration, rank and tag errors (≥2 ranks).
    Errors,
    /// `sendrecv` with an invalid destination (≥2 ranks).
    ErrorsSendrecv,
    /// Ring shifts with `sendrecv` (≥2 ranks).
    Sendrecv,
    /// wait_any / wait_all / test (≥2 ranks).
    Waitany,
    /// Rank 1 exits after one send (≥2 ranks).
    Die,
    /// Rank 1 exits with a 4 MiB isend in flight (≥2 ranks).
    DieRendezvous,
    /// Rank 1 exits after a send that stays unexpected (≥2 ranks).
    DieUnexpected,
    /// The last rank exits while its watcher computes (≥3 ranks).
    DieWatcherBusy,
    /// The last rank's host vanishes silently (it runs `--cut`, e.g. `ip link set eth0
    /// down` in its network namespace, then sleeps); rank 0 must get `PeerDied` within
    /// seconds (≥2 ranks, the last one on another node).
    Vanish {
        /// The shell command that cuts the last rank's host off the network.
        #[arg(long)]
        cut: String,
    },
    /// Prints the transport serving each peer: `transports rank R: 0=shm 1=self 2=tcp…`,
    /// after a barrier (≥1 rank).
    Transports,
    /// Thousands of unexpected messages, full rings (≥2 ranks).
    Flood {
        /// Messages each flooding rank sends.
        #[arg(long, default_value_t = 3000)]
        messages: usize,
    },
    /// Waits for a napping peer (≥2 ranks).
    Sleepy,
    /// A receive completes while the rank computes (≥2 ranks).
    Background {
        /// Bytes per message.
        #[arg(long, default_value_t = 100)]
        len: usize,
        /// Messages (the first to the posted receive, the others unexpected).
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Both ranks pass a barrier first.
        #[arg(long)]
        barrier: bool,
        /// With `--barrier`: how long rank 0 sleeps before entering it, ms (so that rank 1
        /// waits that long in it: its progress thread parks).
        #[arg(long, default_value_t = 0)]
        barrier_late_ms: u64,
        /// First, rank 0 sends one message of `--len` bytes that rank 1 receives with a
        /// nonblocking receive (in `thread` mode on an oversubscribed node, that starts the
        /// progress thread: see `--barrier-late-ms`).
        #[arg(long)]
        warmup: bool,
        /// How long rank 0 waits before sending, ms.
        #[arg(long, default_value_t = 100)]
        send_after_ms: u64,
        /// How long rank 1 computes, ms.
        #[arg(long, default_value_t = 400)]
        compute_ms: u64,
    },
    /// Several threads per rank communicate at once (≥2 ranks).
    Threads {
        /// Threads per rank.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Iterations per thread.
        #[arg(long, default_value_t = 200)]
        iters: usize,
    },
    /// Threads of one rank wake each other; producer and consumer threads (≥2 ranks).
    ThreadsCross {
        /// Iterations per thread.
        #[arg(long, default_value_t = 50)]
        iters: usize,
    },
    /// Initialize, print `pid R PID`, sleep (≥1 rank).
    Hold {
        /// Seconds to sleep.
        #[arg(long, default_value_t = 30)]
        secs: u64,
    },
    /// Print `pid R PID`; ranks but 0 sleep before initializing (≥2 ranks).
    HoldBootstrap {
        /// Seconds to sleep.
        #[arg(long, default_value_t = 30)]
        secs: u64,
    },
}

fn run_case(case: Case, comm: &Comm) -> R {
    match case {
        Case::Sizes => case_sizes(comm),
        Case::Wildcards => case_wildcards(comm),
        Case::Ordering => case_ordering(comm),
        Case::Truncation => case_truncation(comm),
        Case::SelfSend => case_self(comm),
        Case::Random { total, max } => case_random(comm, total, max),
        Case::Probe => case_probe(comm),
        Case::Errors => case_errors(comm),
        Case::ErrorsSendrecv => case_errors_sendrecv(comm),
        Case::Sendrecv => case_sendrecv(comm),
        Case::Waitany => case_waitany(comm),
        Case::Die => case_die(comm),
        Case::DieRendezvous => case_die_rendezvous(comm),
        Case::DieUnexpected => case_die_unexpected(comm),
        Case::DieWatcherBusy => case_die_watcher_busy(comm),
        Case::Vanish { ref cut } => case_vanish(comm, cut),
        Case::Transports => case_transports(comm),
        Case::Flood { messages } => case_flood(comm, messages),
        Case::Sleepy => case_sleepy(comm),
        Case::Background {
            len,
            count,
            barrier,
            barrier_late_ms,
            warmup,
            send_after_ms,
            compute_ms,
        } => case_background(
            comm,
            len,
            count,
            warmup,
            barrier.then_some(Duration::from_millis(barrier_late_ms)),
            Duration::from_millis(send_after_ms),
            Duration::from_millis(compute_ms),
        ),
        Case::Threads { threads, iters } => case_threads(comm, threads, iters),
        Case::ThreadsCross { iters } => case_threads_cross(comm, iters),
        Case::Hold { secs } | Case::HoldBootstrap { secs } => case_hold(comm, secs),
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let name = matches.subcommand_name().unwrap_or("?").to_owned();
    report::set_case(&name);
    report::start_watchdog(Duration::from_secs(cli.timeout), String::new);
    if let Case::Errors = cli.case {
        if let Err(m) = errors_before_init() {
            eprintln!("FAIL {name} {}: {m}", who());
            return ExitCode::from(1);
        }
    }
    if let Case::HoldBootstrap { secs } = cli.case {
        // PMI_RANK is the launcher's (PMI-1) environment, not an option of this program.
        let rank: u32 = std::env::var("PMI_RANK")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        println!("pid {rank} {}", std::process::id());
        let _ = std::io::stdout().flush();
        if rank != 0 {
            step("hold-bootstrap: sleeping before init");
            std::thread::sleep(Duration::from_secs(secs));
        }
    }
    step("init");
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL {name} {}: tocsin::init: {e} ({e:?})", who());
            return ExitCode::from(1);
        }
    };
    report::set_rank(&comm);
    let r = run_case(cli.case, &comm);
    drop(comm);
    report::finish(r)
}
