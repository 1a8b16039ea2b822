//! `PMI_process_mapping`, sans I/O: which node each rank of the job runs on, as launchers
//! publish it (MPICH's hydra, Slurm's `--mpi=pmi2`, `tocsin run`).
//!
//! Owns the grammar of the value and its expansion into one node index per rank. It must not
//! do I/O: [`super::Pmi::process_mapping`] fetches the value and calls [`parse`].
//!
//! # Format (MPICH's `src/mpl/src/mpl_rankmap.c`)
//! ```text
//! mapping       = '(' 'vector' *(',' (block / block_repeats)) ')'
//! block         = num / '(' num ',' num ',' num ')'
//! block_repeats = '[' block *(',' block) ']x' num
//! ```
//! - `(X,Y,Z)`: Z ranks on each of the Y nodes X, X+1, … X+Y−1, the next ranks in rank order.
//! - a bare `X`: one rank on node X (= `(X,1,1)`).
//! - `[…]xN`: the bracketed blocks N times.
//! - if the blocks place fewer ranks than the job has, placement restarts at the first
//!   repeat group or block starting at node 0 (the legacy cyclic form: Slurm's `-m cyclic`
//!   gives `(vector,(0,2,1))` for 4 ranks on 2 nodes = nodes 0,1,0,1); ranks beyond the job
//!   size are ignored.
//! - spaces around tokens are accepted; the empty string means "unknown" and is not a
//!   mapping (the caller treats it as absent).
//!
//! Examples: `(vector,(0,1,4))` = 4 ranks on one node; `(vector,(0,2,2))` = 0,0,1,1;
//! `(vector,(0,1,2),(1,1,1))` = 0,0,1; `(vector,[0,1]x2)` = 0,1,0,1.

use crate::error::{Error, Result};

/// What [`parse`] accepts, for error messages.
pub const ACCEPTED: &str = "MPICH's format (vector,(start_node,nodes,ranks_per_node),...), \
     where a block may also be a bare node id and [blocks]xN repeats blocks";

/// One element of the block list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `(start, nodes, per_node)`.
    Block(u32, u32, u32),
    /// `[items]xN`.
    Repeat(Vec<Item>, u32),
}

/// Parses `text`, the value of `PMI_process_mapping`, into the node index of each of the
/// `size` ranks of the job (`result[rank]`).
///
/// # Errors
/// [`Error::Pmi`] naming the value, what is wrong with it and what is accepted, if it is
/// empty, not of the grammar above, its numbers overflow, or it places fewer than `size`
/// ranks even when cycled (e.g. only blocks of zero ranks, or no block to restart at).
pub fn parse(text: &str, size: u32) -> Result<Vec<u32>> {
    let bad = |why: String| {
        Error::Pmi(format!(
            "PMI_process_mapping={text:?} is not a process mapping tocsin understands: {why} \
             (accepted: {ACCEPTED}; the empty string means unknown)"
        ))
    };
    let items = Parser {
        s: text.as_bytes(),
        i: 0,
    }
    .mapping()
    .map_err(|(why, at)| bad(format!("{why} at byte {at}")))?;
    let mut out = Vec::with_capacity(size as usize);
    expand(&items, size, &mut out).map_err(bad)?;
    if (out.len() as u32) < size {
        // The legacy cyclic form: restart at the first repeat group or block at node 0.
        let restart = items
            .iter()
            .position(|it| matches!(it, Item::Repeat(..) | Item::Block(0, _, _)))
            .ok_or_else(|| {
                bad(format!(
                    "it places {} of the job's {size} ranks and has no block starting at \
                     node 0 to cycle from",
                    out.len()
                ))
            })?;
        loop {
            let before = out.len();
            expand(&items[restart..], size, &mut out).map_err(bad)?;
            if out.len() as u32 >= size {
                break;
            }
            if out.len() == before {
                return Err(bad(format!(
                    "it places {before} of the job's {size} ranks (its blocks hold no ranks)"
                )));
            }
        }
    }
    Ok(out)
}

/// Appends the node ids of `items` to `out`, stopping at `size` entries.
fn expand(items: &[Item], size: u32, out: &mut Vec<u32>) -> std::result::Result<(), String> {
    for it in items {
        if out.len() as u32 >= size {
            return Ok(());
        }
        match it {
            Item::Block(start, nodes, per) => {
                for k in 0..*nodes {
                    let node = start
                        .checked_add(k)
                        .ok_or_else(|| format!("node id {start}+{k} overflows"))?;
                    for _ in 0..*per {
                        if out.len() as u32 >= size {
                            return Ok(());
                        }
                        out.push(node);
                    }
                    if *per == 0 {
                        break;
                    }
                }
            }
            Item::Repeat(inner, n) => {
                for _ in 0..*n {
                    let before = out.len();
                    expand(inner, size, out)?;
                    if out.len() == before {
                        break; // full, or a group of empty blocks: repeating changes nothing
                    }
                }
            }
        }
    }
    Ok(())
}

/// A recursive-descent parser over the bytes of the value. Errors are (what, byte offset).
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

type PResult<T> = std::result::Result<T, (String, usize)>;

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.s.get(self.i).copied()
    }

    fn err<T>(&self, what: impl Into<String>) -> PResult<T> {
        Err((what.into(), self.i))
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => self.err(format!("expected '{}', found '{}'", c as char, x as char)),
            None => self.err(format!("expected '{}', found the end", c as char)),
        }
    }

    fn num(&mut self) -> PResult<u32> {
        self.skip_space();
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        if start == self.i {
            return self.err("expected a number");
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ("number out of range".to_owned(), start))
    }

    fn mapping(mut self) -> PResult<Vec<Item>> {
        if self.peek().is_none() {
            return self.err("empty value");
        }
        self.expect(b'(')?;
        self.skip_space();
        if !self.s[self.i..].starts_with(b"vector") {
            return self.err("expected the word 'vector' after '('");
        }
        self.i += b"vector".len();
        let items = self.items(false)?;
        self.expect(b')')?;
        if self.peek().is_some() {
            return self.err("unexpected text after the closing ')'");
        }
        Ok(items)
    }

    /// `(',' element)*` up to a `)` (or `]` inside a repeat group), which is not consumed.
    fn items(&mut self, in_group: bool) -> PResult<Vec<Item>> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Some(b')') if !in_group => return Ok(items),
                Some(b']') if in_group && !items.is_empty() => return Ok(items),
                Some(b',') => {
                    self.i += 1;
                    items.push(self.element(in_group)?);
                }
                // The first block of a group has no comma before it.
                _ if in_group && items.is_empty() => items.push(self.element(in_group)?),
                Some(c) => {
                    return self.err(format!(
                        "expected ',' or '{}', found '{}'",
                        if in_group { ']' } else { ')' },
                        c as char
                    ))
                }
                None => {
                    return self.err(format!(
                        "expected ',' or '{}', found the end",
                        if in_group { ']' } else { ')' }
                    ))
                }
            }
        }
    }

    fn element(&mut self, in_group: bool) -> PResult<Item> {
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let x = self.num()?;
                self.expect(b',')?;
                let y = self.num()?;
                self.expect(b',')?;
                let z = self.num()?;
                self.expect(b')')?;
                Ok(Item::Block(x, y, z))
            }
            Some(b'[') if !in_group => {
                self.i += 1;
                let inner = self.items(true)?;
                self.expect(b']')?;
                if self.s.get(self.i) != Some(&b'x') {
                    return self.err("expected 'x' and a count after ']'");
                }
                self.i += 1;
                let n = self.num()?;
                Ok(Item::Repeat(inner, n))
            }
            Some(b'[') => self.err("nested '[' repeat groups"),
            Some(c) if c.is_ascii_digit() => Ok(Item::Block(self.num()?, 1, 1)),
            Some(c) => self.err(format!("expected a block, found '{}'", c as char)),
            None => self.err("expected a block, found the end"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, n: u32) -> Vec<u32> {
        parse(s, n).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn launchers_values() {
        // tocsin run / hydra on one node.
        assert_eq!(ok("(vector,(0,1,4))", 4), [0, 0, 0, 0]);
        // Slurm -N2 -n2, -N2 -n4 (block), -m cyclic, -N2 -n3 (measured).
        assert_eq!(ok("(vector,(0,2,1))", 2), [0, 1]);
        assert_eq!(ok("(vector,(0,2,2))", 4), [0, 0, 1, 1]);
        assert_eq!(ok("(vector,(0,2,1),(0,2,1))", 4), [0, 1, 0, 1]);
        assert_eq!(ok("(vector,(0,1,2),(1,1,1))", 3), [0, 0, 1]);
    }

    #[test]
    fn bare_ids_repeats_spaces_cycling_and_truncation() {
        assert_eq!(ok("(vector,0,1,1,0)", 4), [0, 1, 1, 0]);
        assert_eq!(ok("(vector,[0,1]x2)", 4), [0, 1, 0, 1]);
        assert_eq!(
            ok("(vector,[(0,2,1),2]x2,(3,1,2))", 8),
            [0, 1, 2, 0, 1, 2, 3, 3]
        );
        assert_eq!(ok(" ( vector , ( 0 , 2 , 2 ) ) ", 4), [0, 0, 1, 1]);
        // Legacy cyclic form: too few ranks placed, restart at the node-0 block.
        assert_eq!(ok("(vector,(0,2,1))", 5), [0, 1, 0, 1, 0]);
        assert_eq!(ok("(vector,(1,1,1),(0,2,1))", 5), [1, 0, 1, 0, 1]);
        // More ranks placed than the job has: the rest is ignored.
        assert_eq!(ok("(vector,(0,4,4))", 3), [0, 0, 0]);
        assert_eq!(ok("(vector)", 0), Vec::<u32>::new());
    }

    #[test]
    fn bad_values_name_the_value_and_the_format() {
        for (s, n, needle) in [
            ("", 2, "empty value"),
            ("vector,(0,1,2)", 2, "expected '('"),
            ("(list,(0,1,2))", 2, "'vector'"),
            ("(vectors,(0,1,2))", 2, "expected ','"),
            ("(vector,(0,1))", 2, "expected ','"),
            ("(vector,(0,1,2)", 2, "expected ','"),
            ("(vector,(0,1,2)) x", 2, "after the closing"),
            ("(vector,(0,-1,2))", 2, "expected a number"),
            ("(vector,(0,1,99999999999))", 2, "out of range"),
            ("(vector,[0,1]2)", 4, "expected 'x'"),
            ("(vector,[[0]x2]x2)", 4, "nested"),
            ("(vector,(1,2,1))", 4, "no block starting at node 0"),
            ("(vector,(0,2,0))", 4, "hold no ranks"),
            ("(vector,(4294967295,2,1))", 2, "overflows"),
            ("(vector,,)", 2, "expected a block"),
        ] {
            let e = parse(s, n).unwrap_err();
            assert!(matches!(e, Error::Pmi(_)), "{s:?}: {e:?}");
            let m = e.to_string();
            assert!(m.contains(needle), "{s:?}: {m}");
            assert!(
                m.contains(&format!("{s:?}")) && m.contains("vector,(start_node"),
                "{m}"
            );
        }
    }

    /// MPICH's encoder's shape, simplified: runs of equal node ids, consecutive runs of the
    /// same length on consecutive nodes merged into one block.
    fn encode(map: &[u32]) -> String {
        let mut blocks: Vec<(u32, u32, u32)> = Vec::new();
        for &node in map {
            match blocks.last_mut() {
                Some((x, y, z)) if *y == 1 && *x == node => *z += 1,
                _ => blocks.push((node, 1, 1)),
            }
            // Merge the last two blocks if they form one (X,Y+1,Z).
            if blocks.len() >= 2 {
                let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
                if b.1 == 1 && a.2 == b.2 && a.0 + a.1 == b.0 {
                    blocks.pop();
                    blocks.last_mut().unwrap().1 += 1;
                }
            }
        }
        let mut s = "(vector".to_owned();
        for (x, y, z) in blocks {
            s += &format!(",({x},{y},{z})");
        }
        s + ")"
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any placement, encoded as a block list, parses back to itself.
        #[test]
        fn encoded_placements_round_trip(
            map in proptest::collection::vec(0u32..6, 1..40),
        ) {
            let s = encode(&map);
            let got = parse(&s, map.len() as u32);
            proptest::prop_assert!(got.is_ok(), "{}: {:?}", s, got);
            proptest::prop_assert_eq!(got.unwrap(), map, "{}", s);
        }

        /// Repeat groups expand as their unrolled text does.
        #[test]
        fn repeats_equal_their_unrolled_form(
            blocks in proptest::collection::vec((0u32..5, 1u32..3, 1u32..3), 1..4),
            n in 1u32..4,
            size in 1u32..30,
        ) {
            // No more ranks than the blocks place: cycling restarts differently in the two
            // forms (at the group, or at the first node-0 block).
            let total: u32 = blocks.iter().map(|(_, y, z)| y * z).sum::<u32>() * n;
            let size = size.min(total);
            let inner: Vec<String> =
                blocks.iter().map(|(x, y, z)| format!("({x},{y},{z})")).collect();
            let grouped = format!("(vector,[{}]x{n})", inner.join(","));
            let unrolled = format!("(vector,{})", vec![inner.join(","); n as usize].join(","));
            let a = parse(&grouped, size);
            let b = parse(&unrolled, size);
            proptest::prop_assert!(a.is_ok() && b.is_ok(), "{}: {:?} / {}: {:?}", grouped, a, unrolled, b);
            proptest::prop_assert_eq!(a.unwrap(), b.unwrap(), "{} vs {}", grouped, unrolled);
        }

        /// Arbitrary text never panics, and a success places exactly `size` ranks.
        #[test]
        fn arbitrary_text_never_panics(
            s in "[(),\\[\\]x0-9 vectorx]{0,40}",
            size in 0u32..50,
        ) {
            if let Ok(v) = parse(&s, size) {
                proptest::prop_assert_eq!(v.len(), size as usize);
            }
        }
    }
}
