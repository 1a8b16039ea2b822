//! Which ranks share a node, and so which transport serves each peer.
//!
//! Owns the node map of the job: taken from the launcher's `PMI_process_mapping` when it
//! publishes one (hydra, Slurm, `tocsin run`), else from every rank's node key (an O(n²)
//! exchange, for launchers without a mapping); confirmed when a node's segment is attached
//! (the node key of its leader must equal ours: hostname, boot id and IPC namespace).
//! `TOCSIN_NOLOCAL=1` puts every rank on a node of its own (as MPICH's `MPIR_CVAR_NOLOCAL`),
//! so that the network transport serves every peer. It must not open transports itself.

use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::Rank;

/// How a peer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// This rank: self-sends are matched by the protocol core directly, no transport.
    SelfRank,
    /// A rank of this node: shared-memory rings and CMA.
    Shm,
    /// A rank of another node (or any other rank under `TOCSIN_NOLOCAL=1`): TCP.
    Tcp,
}

impl Route {
    /// The transport's name, as printed by `tocsin probe` and in errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::SelfRank => "self",
            Route::Shm => "shm",
            Route::Tcp => "tcp",
        }
    }
}

/// The node map of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nodes {
    /// Node index of each rank.
    pub node_of: Vec<u32>,
}

impl Nodes {
    /// Every rank on one node.
    pub(crate) fn single(n: u32) -> Nodes {
        Nodes {
            node_of: vec![0; n as usize],
        }
    }
    /// Every rank on a node of its own (`TOCSIN_NOLOCAL=1`).
    pub(crate) fn each_alone(n: u32) -> Nodes {
        Nodes {
            node_of: (0..n).collect(),
        }
    }
    /// The ranks on `r`'s node, ascending (the first is the node's leader).
    pub(crate) fn local_ranks(&self, r: Rank) -> Vec<Rank> {
        let k = self.node_of[r as usize];
        (0..self.node_of.len() as Rank)
            .filter(|&q| self.node_of[q as usize] == k)
            .collect()
    }
    /// The route from `me` to `peer`.
    pub(crate) fn route(&self, me: Rank, peer: Rank) -> Route {
        if me == peer {
            Route::SelfRank
        } else if self.node_of[me as usize] == self.node_of[peer as usize] {
            Route::Shm
        } else {
            Route::Tcp
        }
    }
    /// Number of distinct nodes.
    pub(crate) fn count(&self) -> usize {
        let mut v = self.node_of.clone();
        v.sort_unstable();
        v.dedup();
        v.len()
    }
}

/// This process's node key: hostname, boot id and IPC namespace. Two ranks can share memory
/// and use CMA only if their keys are equal.
pub(crate) fn node_key() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ipc = std::fs::read_link("/proc/self/ns/ipc")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}|{}|{}", crate::sys::hostname(), boot.trim(), ipc)
}

/// Parses MPICH's `PMI_process_mapping` value, `(vector,(base,nodes,ranks_per_node),...)`:
/// each triple says that `nodes` consecutive nodes from `base` take `ranks_per_node`
/// consecutive ranks each; the list repeats from its start until every rank is placed (as
/// MPICH's `MPIR_NODEMAP_populate_ids_from_mapping` reads it: hydra publishes
/// `(vector,(0,1,1))` for two ranks on one node, i.e. round-robin over one node). Returns
/// the node of each of the `n` ranks.
///
/// # Errors
/// A message naming the value and the accepted form, if it does not parse or places no rank.
pub(crate) fn parse_process_mapping(v: &str, n: u32) -> std::result::Result<Nodes, String> {
    let bad = |why: &str| {
        format!(
            "PMI_process_mapping {v:?}: {why} (accepted: (vector,(base,nodes,ranks_per_node),...))"
        )
    };
    let s: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    let body = s
        .strip_prefix("(vector")
        .and_then(|b| b.strip_suffix(')'))
        .ok_or_else(|| bad("not a vector"))?;
    let mut blocks = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let t = rest
            .strip_prefix(",(")
            .ok_or_else(|| bad("expected ',(' before a triple"))?;
        let end = t.find(')').ok_or_else(|| bad("unclosed triple"))?;
        let nums: Vec<u32> = t[..end]
            .split(',')
            .map(|x| x.parse::<u32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("a triple holds something other than a number below 2^32"))?;
        let [base, nodes, per] = nums[..] else {
            return Err(bad("a triple must have three numbers"));
        };
        if nodes == 0 || per == 0 {
            return Err(bad("zero nodes or ranks per node"));
        }
        if base.checked_add(nodes).is_none() {
            return Err(bad("node index too large"));
        }
        blocks.push((base, nodes, per));
        rest = &t[end + 1..];
    }
    if blocks.is_empty() {
        return Err(bad("no triple"));
    }
    let mut node_of = Vec::with_capacity(n as usize);
    'fill: while node_of.len() < n as usize {
        for &(base, nodes, per) in &blocks {
            for node in base..base + nodes {
                for _ in 0..per {
                    if node_of.len() == n as usize {
                        break 'fill;
                    }
                    node_of.push(node);
                }
            }
        }
    }
    Ok(Nodes { node_of })
}

/// The job's node map (collective only in the fallback: every rank calls it).
///
/// `nolocal`: every rank alone. Else the launcher's `PMI_process_mapping`; if it has none,
/// every rank publishes its node key and reads all the others' (O(n²) PMI requests in all:
/// launchers that run large jobs publish a mapping).
///
/// # Errors
/// [`Error::Pmi`] if the launcher fails or publishes a malformed mapping.
pub(crate) fn discover(pmi: &mut Pmi, nolocal: bool) -> Result<Nodes> {
    let n = pmi.size();
    if nolocal {
        return Ok(Nodes::each_alone(n));
    }
    if let Ok(v) = pmi.get("PMI_process_mapping") {
        if !v.is_empty() {
            return parse_process_mapping(&v, n).map_err(Error::Pmi);
        }
    }
    // No mapping: exchange node keys.
    let me = pmi.rank();
    pmi.put(&format!("tocsin.nodekey.{me}"), &hex(&node_key()))?;
    pmi.barrier()?;
    let mut keys: Vec<String> = Vec::new();
    let mut node_of = Vec::with_capacity(n as usize);
    for r in 0..n {
        let k = pmi.get(&format!("tocsin.nodekey.{r}"))?;
        let idx = match keys.iter().position(|x| *x == k) {
            Some(i) => i,
            None => {
                keys.push(k);
                keys.len() - 1
            }
        };
        node_of.push(idx as u32);
    }
    Ok(Nodes { node_of })
}

/// Lower-case hex of a string's bytes (PMI values may not hold spaces or `=`).
pub(crate) fn hex(s: &str) -> String {
    s.bytes().map(|x| format!("{x:02x}")).collect()
}

/// The inverse of [`hex`] (invalid pairs are skipped).
pub(crate) fn unhex(s: &str) -> String {
    let b: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mappings_of_hydra_and_slurm_parse() {
        let m = parse_process_mapping("(vector,(0,2,2))", 4).unwrap();
        assert_eq!(m.node_of, vec![0, 0, 1, 1]);
        assert_eq!(m.count(), 2);
        assert_eq!(m.route(0, 1), Route::Shm);
        assert_eq!(m.route(1, 2), Route::Tcp);
        assert_eq!(m.route(3, 3), Route::SelfRank);
        assert_eq!(m.local_ranks(2), vec![2, 3]);
        let m = parse_process_mapping("(vector,(0,1,3),(1,1,1))", 4).unwrap();
        assert_eq!(m.node_of, vec![0, 0, 0, 1]);
        let m = parse_process_mapping(" (vector, (0,1,4)) ", 4).unwrap();
        assert_eq!(m, Nodes::single(4));
        // hydra, two ranks on one node: the list repeats (round-robin over one node).
        assert_eq!(
            parse_process_mapping("(vector,(0,1,1))", 2).unwrap(),
            Nodes::single(2)
        );
        // Round-robin over two nodes (hydra without -ppn on two hosts).
        assert_eq!(
            parse_process_mapping("(vector,(0,2,1))", 5)
                .unwrap()
                .node_of,
            vec![0, 1, 0, 1, 0]
        );
        // More places than ranks: the job takes the first n.
        assert_eq!(
            parse_process_mapping("(vector,(0,1,3))", 2).unwrap(),
            Nodes::single(2)
        );
    }

    #[test]
    fn bad_mappings_name_the_value_and_the_form() {
        for (v, n) in [
            ("", 2),
            ("(vector,(0,1))", 2),
            ("(vector,(0,1,2)", 2),
            ("(vector,(0,1,x))", 2),
            ("(vector)", 2),
            ("(vector,(0,0,2))", 2),
            ("(vector,(4294967295,2,1))", 2),
            ("[0,1]", 2),
        ] {
            let e = parse_process_mapping(v, n).unwrap_err();
            assert!(e.contains("accepted: (vector"), "{v}: {e}");
        }
    }

    proptest! {
        #[test]
        fn any_block_mapping_round_trips(blocks in proptest::collection::vec((1u64..4, 1u64..5), 1..5)) {
            let mut s = String::from("(vector");
            let mut base = 0;
            let mut want = Vec::new();
            for (nodes, per) in &blocks {
                s += &format!(",({base},{nodes},{per})");
                for k in base..base + nodes {
                    for _ in 0..*per { want.push(k as u32); }
                }
                base += nodes;
            }
            s += ")";
            let m = parse_process_mapping(&s, want.len() as u32).unwrap();
            prop_assert_eq!(m.node_of, want);
        }

        #[test]
        fn garbage_never_panics(s in ".{0,40}", n in 0u32..8) {
            let _ = parse_process_mapping(&s, n);
        }
    }
}
