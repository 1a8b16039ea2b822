//! The launcher's PMI-1 server, sans I/O: the job's key-value space, the barrier, finalize
//! and abort bookkeeping. The event loop (`job.rs`) feeds it one request line at a time and
//! sends the replies it returns; this module never touches a socket or a process.

use std::collections::HashMap;

use tocsin::pmi::line;

/// Longest KVS name announced in `cmd=maxes`, bytes.
pub(crate) const KVSNAME_MAX: usize = 256;
/// Longest key announced in `cmd=maxes`, bytes.
pub(crate) const KEYLEN_MAX: usize = 256;
/// Longest value announced in `cmd=maxes`, bytes.
pub(crate) const VALLEN_MAX: usize = 4096;
/// Longest request line accepted from a rank, bytes.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;

/// Prefix of the keys whose value is a POSIX shared-memory name to unlink at job end.
pub(crate) const SHM_KEY_PREFIX: &str = "tocsin.shm.posix";

/// What the event loop must do after a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send this line to this rank.
    Reply(u32, String),
    /// A rank asked to end the job (`cmd=abort`).
    Abort {
        /// The rank that asked.
        rank: u32,
        /// The exit code it gave.
        code: i32,
        /// Its message (may be empty).
        msg: String,
    },
    /// Report this problem on stderr (the request was answered with an error line).
    Warn(String),
}

/// State of the PMI-1 service for one job of `n` ranks.
#[derive(Debug)]
pub(crate) struct Server {
    n: u32,
    kvsname: String,
    kvs: HashMap<String, String>,
    in_barrier: Vec<bool>,
    barrier_count: u32,
    finalized: Vec<bool>,
    closed: Vec<bool>,
    shm_names: Vec<String>,
}

impl Server {
    /// A server for `n` ranks with KVS name `kvsname`. The KVS starts with
    /// `PMI_process_mapping` (all ranks on one node), which MPICH-based ranks read.
    pub(crate) fn new(n: u32, kvsname: String) -> Self {
        let mut kvs = HashMap::new();
        kvs.insert(
            "PMI_process_mapping".to_owned(),
            format!("(vector,(0,1,{n}))"),
        );
        let n_us = n as usize;
        Server {
            n,
            kvsname,
            kvs,
            in_barrier: vec![false; n_us],
            barrier_count: 0,
            finalized: vec![false; n_us],
            closed: vec![false; n_us],
            shm_names: Vec::new(),
        }
    }

    /// POSIX shared-memory names published under [`SHM_KEY_PREFIX`] keys, to unlink at the end.
    pub(crate) fn shm_names(&self) -> &[String] {
        &self.shm_names
    }

    /// Whether `rank` sent `cmd=finalize`.
    pub(crate) fn finalized(&self, rank: u32) -> bool {
        self.finalized[rank as usize]
    }

    /// Records that `rank`'s PMI connection is gone (EOF or error).
    pub(crate) fn closed(&mut self, rank: u32) {
        self.closed[rank as usize] = true;
    }

    /// If a barrier can never complete, returns `(waiting, blockers)`: the ranks waiting in
    /// it, and the ranks that cannot enter it any more (connection closed or finalized).
    pub(crate) fn stuck_barrier(&self) -> Option<(Vec<u32>, Vec<u32>)> {
        if self.barrier_count == 0 {
            return None;
        }
        let blockers: Vec<u32> = (0..self.n)
            .filter(|&r| {
                let i = r as usize;
                !self.in_barrier[i] && (self.closed[i] || self.finalized[i])
            })
            .collect();
        if blockers.is_empty() {
            return None;
        }
        let waiting = (0..self.n)
            .filter(|&r| self.in_barrier[r as usize])
            .collect();
        Some((waiting, blockers))
    }

    /// Handles one request line (without its `\n`) from `rank`.
    pub(crate) fn handle(&mut self, rank: u32, text: &str) -> Vec<Action> {
        let req = match line::parse(text) {
            Ok(l) => l,
            Err(e) => {
                return vec![
                    Action::Reply(
                        rank,
                        line::format("error", &[("rc", "-1"), ("msg", "malformed_request")]),
                    ),
                    Action::Warn(format!("rank {rank} sent a malformed PMI request: {e}")),
                ]
            }
        };
        let reply = |s: String| vec![Action::Reply(rank, s)];
        match req.cmd {
            "init" => {
                let v = req.get("pmi_version").unwrap_or("");
                if v == "1" {
                    reply(line::format(
                        "response_to_init",
                        &[("pmi_version", "1"), ("pmi_subversion", "1"), ("rc", "0")],
                    ))
                } else {
                    vec![
                        Action::Reply(
                            rank,
                            line::format(
                                "response_to_init",
                                &[("pmi_version", "1"), ("pmi_subversion", "1"), ("rc", "-1")],
                            ),
                        ),
                        Action::Warn(format!(
                            "rank {rank} asked for PMI version {v:?}; tocsin run serves PMI-1 only"
                        )),
                    ]
                }
            }
            "get_maxes" => reply(line::format(
                "maxes",
                &[
                    ("kvsname_max", &KVSNAME_MAX.to_string()),
                    ("keylen_max", &KEYLEN_MAX.to_string()),
                    ("vallen_max", &VALLEN_MAX.to_string()),
                ],
            )),
            "get_my_kvsname" => reply(line::format("my_kvsname", &[("kvsname", &self.kvsname)])),
            "get_appnum" => reply(line::format("appnum", &[("appnum", "0")])),
            "get_universe_size" => reply(line::format(
                "universe_size",
                &[("size", &self.n.to_string())],
            )),
            "put" => self.put(rank, &req, text),
            "get" => self.get(rank, &req),
            "barrier_in" => {
                let i = rank as usize;
                if !self.in_barrier[i] {
                    self.in_barrier[i] = true;
                    self.barrier_count += 1;
                }
                if self.barrier_count < self.n {
                    return Vec::new();
                }
                self.in_barrier.iter_mut().for_each(|b| *b = false);
                self.barrier_count = 0;
                (0..self.n)
                    .map(|r| Action::Reply(r, line::format("barrier_out", &[])))
                    .collect()
            }
            "finalize" => {
                self.finalized[rank as usize] = true;
                reply(line::format("finalize_ack", &[]))
            }
            "abort" => {
                let code = req
                    .get("exitcode")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let msg = req.get("error_msg").unwrap_or("").to_owned();
                vec![Action::Abort { rank, code, msg }]
            }
            other => vec![
                Action::Reply(
                    rank,
                    line::format(
                        "error",
                        &[
                            ("rc", "-1"),
                            ("msg", &format!("unsupported_command_{other}")),
                        ],
                    ),
                ),
                Action::Warn(format!(
                    "rank {rank} sent an unsupported PMI command: {:?}",
                    text.trim_end()
                )),
            ],
        }
    }

    fn put(&mut self, rank: u32, req: &line::Line<'_>, text: &str) -> Vec<Action> {
        let fail = |why: String| {
            vec![
                Action::Reply(
                    rank,
                    line::format("put_result", &[("rc", "-1"), ("msg", "invalid_put")]),
                ),
                Action::Warn(format!(
                    "rank {rank}: refused PMI put ({why}): {:?}",
                    text.trim_end()
                )),
            ]
        };
        let (Some(kvs), Some(key), Some(value)) =
            (req.get("kvsname"), req.get("key"), req.get("value"))
        else {
            return fail("it needs kvsname, key and value".into());
        };
        if kvs != self.kvsname {
            return fail(format!(
                "unknown KVS {kvs:?}; this job's is {:?}",
                self.kvsname
            ));
        }
        if let Err(e) = line::check_token("key", key, KEYLEN_MAX)
            .and_then(|()| line::check_token("value", value, VALLEN_MAX))
        {
            return fail(e.to_string());
        }
        if key.starts_with(SHM_KEY_PREFIX) {
            if is_shm_name(value) {
                if !self.shm_names.iter().any(|n| n == value) {
                    self.shm_names.push(value.to_owned());
                }
            } else {
                // Stored anyway; only cleanup is skipped.
                self.kvs.insert(key.to_owned(), value.to_owned());
                return vec![
                    Action::Reply(
                        rank,
                        line::format("put_result", &[("rc", "0"), ("msg", "success")]),
                    ),
                    Action::Warn(format!(
                        "rank {rank}: key {key:?} should hold a POSIX shared-memory name \
                         (\"/name\"), got {value:?}; it will not be unlinked at job end"
                    )),
                ];
            }
        }
        self.kvs.insert(key.to_owned(), value.to_owned());
        vec![Action::Reply(
            rank,
            line::format("put_result", &[("rc", "0"), ("msg", "success")]),
        )]
    }

    fn get(&mut self, rank: u32, req: &line::Line<'_>) -> Vec<Action> {
        let Some(key) = req.get("key") else {
            return vec![Action::Reply(
                rank,
                line::format("get_result", &[("rc", "-1"), ("msg", "missing_key")]),
            )];
        };
        if req.get("kvsname").is_some_and(|k| k != self.kvsname) {
            return vec![Action::Reply(
                rank,
                line::format("get_result", &[("rc", "-1"), ("msg", "unknown_kvsname")]),
            )];
        }
        match self.kvs.get(key) {
            Some(v) => vec![Action::Reply(
                rank,
                line::format(
                    "get_result",
                    &[("rc", "0"), ("msg", "success"), ("value", v)],
                ),
            )],
            None => vec![Action::Reply(
                rank,
                line::format("get_result", &[("rc", "-1"), ("msg", "key_not_found")]),
            )],
        }
    }
}

/// A POSIX shared-memory object name: `/` followed by 1..=254 characters without `/`.
fn is_shm_name(s: &str) -> bool {
    s.len() >= 2 && s.len() <= 255 && s.starts_with('/') && !s[1..].contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(actions: &[Action]) -> Vec<(u32, &str)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Reply(r, s) => Some((*r, s.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn handshake_kvs_barrier_finalize() {
        let mut s = Server::new(2, "kvs_t".into());
        assert_eq!(
            replies(&s.handle(0, "cmd=init pmi_version=1 pmi_subversion=1")),
            vec![(
                0,
                "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"
            )]
        );
        assert_eq!(
            replies(&s.handle(1, "cmd=get_maxes")),
            vec![(
                1,
                "cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=4096\n"
            )]
        );
        assert_eq!(
            replies(&s.handle(1, "cmd=get_my_kvsname")),
            vec![(1, "cmd=my_kvsname kvsname=kvs_t\n")]
        );
        assert_eq!(
            replies(&s.handle(0, "cmd=put kvsname=kvs_t key=a value=1")),
            vec![(0, "cmd=put_result rc=0 msg=success\n")]
        );
        assert!(s.handle(0, "cmd=barrier_in").is_empty());
        assert!(s.stuck_barrier().is_none());
        assert_eq!(
            replies(&s.handle(1, "cmd=barrier_in")),
            vec![(0, "cmd=barrier_out\n"), (1, "cmd=barrier_out\n")]
        );
        assert_eq!(
            replies(&s.handle(1, "cmd=get kvsname=kvs_t key=a")),
            vec![(1, "cmd=get_result rc=0 msg=success value=1\n")]
        );
        assert_eq!(
            replies(&s.handle(1, "cmd=get kvsname=kvs_t key=PMI_process_mapping")),
            vec![(
                1,
                "cmd=get_result rc=0 msg=success value=(vector,(0,1,2))\n"
            )]
        );
        assert!(replies(&s.handle(1, "cmd=get kvsname=kvs_t key=zz"))[0]
            .1
            .contains("rc=-1"));
        assert_eq!(
            replies(&s.handle(1, "cmd=finalize")),
            vec![(1, "cmd=finalize_ack\n")]
        );
        assert!(s.finalized(1) && !s.finalized(0));
    }

    #[test]
    fn errors_are_answered_not_ignored() {
        let mut s = Server::new(1, "k".into());
        for bad in [
            "garbage",
            "cmd=frobnicate x=1",
            "cmd=put kvsname=k key=a",
            "cmd=put kvsname=other key=a value=b",
        ] {
            let a = s.handle(0, bad);
            let r = replies(&a);
            assert_eq!(r.len(), 1, "{bad}: {a:?}");
            assert!(r[0].1.contains("rc=-1"), "{bad}: {a:?}");
            assert!(
                a.iter().any(|x| matches!(x, Action::Warn(_))),
                "{bad}: {a:?}"
            );
        }
        let a = s.handle(0, "cmd=init pmi_version=2 pmi_subversion=0");
        assert!(replies(&a)[0].1.contains("rc=-1"));
    }

    #[test]
    fn abort_and_stuck_barrier() {
        let mut s = Server::new(3, "k".into());
        assert_eq!(
            s.handle(2, "cmd=abort exitcode=7 error_msg=out_of_memory"),
            vec![Action::Abort {
                rank: 2,
                code: 7,
                msg: "out_of_memory".into()
            }]
        );
        s.handle(0, "cmd=barrier_in");
        assert!(s.stuck_barrier().is_none());
        s.closed(1);
        assert_eq!(s.stuck_barrier(), Some((vec![0], vec![1])));
    }

    #[test]
    fn shm_names_are_collected() {
        let mut s = Server::new(1, "k".into());
        s.handle(
            0,
            "cmd=put kvsname=k key=tocsin.shm.posix.0 value=/tocsin-abc",
        );
        s.handle(
            0,
            "cmd=put kvsname=k key=tocsin.shm.posix.1 value=/tocsin-abc",
        );
        let a = s.handle(
            0,
            "cmd=put kvsname=k key=tocsin.shm.posix.2 value=not/a/name",
        );
        assert!(a.iter().any(|x| matches!(x, Action::Warn(_))));
        s.handle(0, "cmd=put kvsname=k key=other value=/tocsin-other");
        assert_eq!(s.shm_names(), ["/tocsin-abc".to_string()]);
    }

    mod props {
        use super::super::Server;
        use proptest::prelude::*;

        /// A request line: arbitrary text, or a known command with arbitrary fields.
        fn request() -> impl Strategy<Value = String> {
            let cmds = vec![
                "init",
                "get_maxes",
                "get_my_kvsname",
                "put",
                "get",
                "barrier_in",
                "finalize",
                "abort",
                "get_universe_size",
                "get_appnum",
                "initack",
                "spawn",
            ];
            prop_oneof![
                any::<String>(),
                (
                    prop::sample::select(cmds),
                    prop::collection::vec(("[a-z_]{1,12}", "[ -~]{0,12}"), 0..5),
                )
                    .prop_map(|(c, f)| {
                        let mut l = format!("cmd={c}");
                        for (k, v) in f {
                            l.push_str(&format!(" {k}={v}"));
                        }
                        l
                    }),
            ]
        }

        proptest! {
            /// Whatever ranks send, the server answers or warns: it never panics.
            #[test]
            fn arbitrary_requests_never_panic(
                reqs in prop::collection::vec((0u32..3, request()), 0..24),
            ) {
                let mut s = Server::new(3, "kvs_p".into());
                for (rank, text) in &reqs {
                    let _ = s.handle(*rank, text);
                }
            }
        }
    }
}
