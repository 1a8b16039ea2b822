//! Which ranks share a node, and so which transport serves each peer.
//!
//! Owns the node map of the job: taken from the launcher's `PMI_process_mapping` when it
//! publishes one (hydra, Slurm, `tocsin run`; parsed by [`Pmi::process_mapping`]), else from every rank's node key (an O(n²)
//! exchange, for launchers without a mapping); confirmed when a node's segment is attached
//! (the node key of its leader must equal ours: hostname, boot id and IPC namespace).
//! `TOCSIN_NOLOCAL=1` puts every rank on a node of its own (as MPICH's `MPIR_CVAR_NOLOCAL`),
//! so that the network transport serves every peer. It must not open transports itself.

use crate::error::Result;
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
    if let Some(node_of) = pmi.process_mapping()? {
        return Ok(Nodes { node_of });
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
    hex_bytes(s.as_bytes())
}

/// Lower-case hex of `b`.
pub(crate) fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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

    #[test]
    fn routes_follow_the_node_map() {
        let m = Nodes {
            node_of: vec![0, 0, 1, 1],
        };
        assert_eq!(m.count(), 2);
        assert_eq!(m.route(0, 1), Route::Shm);
        assert_eq!(m.route(1, 2), Route::Tcp);
        assert_eq!(m.route(3, 3), Route::SelfRank);
        assert_eq!(m.local_ranks(2), vec![2, 3]);
        let alone = Nodes::each_alone(3);
        assert_eq!(alone.route(0, 1), Route::Tcp);
        assert_eq!(alone.local_ranks(1), vec![1]);
        assert_eq!(Nodes::single(3).count(), 1);
    }

    #[test]
    fn node_keys_name_the_host() {
        assert!(node_key().starts_with(&crate::sys::hostname()));
        assert_eq!(
            unhex(&hex("h1|x|ipc:[4026531839]")),
            "h1|x|ipc:[4026531839]"
        );
    }
}
