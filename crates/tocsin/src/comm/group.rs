//! Process groups (MPI-4.1 §7.3): ordered sets of world ranks, with rank translation and
//! set operations. Local objects: nothing here communicates.
//!
//! Owns [`Group`] and [`Compare`]. Must not know about contexts, requests or the engine.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::Rank;

/// An ordered set of processes, named by their rank in the world communicator. Rank `i` of
/// the group is `world_ranks()[i]`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Group {
    ranks: Arc<[Rank]>,
    me: Option<Rank>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("size", &self.size())
            .field("rank", &self.me)
            .finish()
    }
}

/// How two groups or communicators compare (MPI_IDENT, MPI_CONGRUENT, MPI_SIMILAR,
/// MPI_UNEQUAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compare {
    /// The same object (communicators: the same context), or groups with the same members
    /// in the same order.
    Ident,
    /// Communicators with the same members in the same order but different contexts.
    Congruent,
    /// The same members in another order.
    Similar,
    /// Different members.
    Unequal,
}

impl Group {
    /// The group of `world_ranks` (in that order); `me` is this process's world rank.
    pub(crate) fn from_world(world_ranks: Vec<Rank>, me_world: Rank) -> Group {
        let me = world_ranks
            .iter()
            .position(|&r| r == me_world)
            .map(|i| i as Rank);
        Group {
            ranks: world_ranks.into(),
            me,
        }
    }

    /// The empty group (MPI_GROUP_EMPTY).
    pub fn empty() -> Group {
        Group {
            ranks: Arc::from(Vec::new()),
            me: None,
        }
    }

    /// Number of members.
    pub fn size(&self) -> u32 {
        self.ranks.len() as u32
    }

    /// This process's rank in the group, `None` if it is not a member (MPI_UNDEFINED).
    pub fn rank(&self) -> Option<Rank> {
        self.me
    }

    /// The members' world ranks, in group order.
    pub fn world_ranks(&self) -> &[Rank] {
        &self.ranks
    }

    pub(crate) fn shared_ranks(&self) -> Arc<[Rank]> {
        self.ranks.clone()
    }

    fn me_world(&self) -> Option<Rank> {
        self.me.map(|r| self.ranks[r as usize])
    }

    fn with(&self, ranks: Vec<Rank>, me_world: Option<Rank>) -> Group {
        match me_world {
            Some(w) => Group::from_world(ranks, w),
            None => Group {
                ranks: ranks.into(),
                me: None,
            },
        }
    }

    fn check(&self, ranks: &[Rank]) -> Result<()> {
        let mut seen = vec![false; self.ranks.len()];
        for &r in ranks {
            match seen.get_mut(r as usize) {
                None => {
                    return Err(Error::InvalidRank {
                        rank: r,
                        size: self.size(),
                    })
                }
                Some(s) if *s => {
                    return Err(Error::InvalidArgument {
                        what: "ranks",
                        detail: format!("rank {r} appears twice (each rank at most once)"),
                    })
                }
                Some(s) => *s = true,
            }
        }
        Ok(())
    }

    /// The group of members `ranks` (group ranks, in that order): MPI_Group_incl.
    ///
    /// # Errors
    /// [`Error::InvalidRank`] for a rank outside `0..size`, [`Error::InvalidArgument`] for a
    /// rank given twice.
    pub fn incl(&self, ranks: &[Rank]) -> Result<Group> {
        self.check(ranks)?;
        let v = ranks.iter().map(|&r| self.ranks[r as usize]).collect();
        Ok(self.with(v, self.me_world()))
    }

    /// The group without members `ranks`, in the original order: MPI_Group_excl.
    ///
    /// # Errors
    /// As [`Group::incl`].
    pub fn excl(&self, ranks: &[Rank]) -> Result<Group> {
        self.check(ranks)?;
        let v = (0..self.size())
            .filter(|r| !ranks.contains(r))
            .map(|r| self.ranks[r as usize])
            .collect();
        Ok(self.with(v, self.me_world()))
    }

    /// The rank in `other` of each of `ranks` of this group (`None`: not a member,
    /// MPI_UNDEFINED): MPI_Group_translate_ranks.
    ///
    /// # Errors
    /// [`Error::InvalidRank`] for a rank outside `0..size`.
    pub fn translate_ranks(&self, ranks: &[Rank], other: &Group) -> Result<Vec<Option<Rank>>> {
        ranks
            .iter()
            .map(|&r| {
                let w = *self.ranks.get(r as usize).ok_or(Error::InvalidRank {
                    rank: r,
                    size: self.size(),
                })?;
                Ok(other.ranks.iter().position(|&x| x == w).map(|i| i as Rank))
            })
            .collect()
    }

    /// Members of this group, then those of `other` not in it: MPI_Group_union.
    pub fn union(&self, other: &Group) -> Group {
        let mut v = self.ranks.to_vec();
        v.extend(other.ranks.iter().filter(|r| !self.ranks.contains(r)));
        self.with(v, self.me_world().or(other.me_world()))
    }

    /// Members of this group also in `other`, in this group's order: MPI_Group_intersection.
    pub fn intersection(&self, other: &Group) -> Group {
        let v = self
            .ranks
            .iter()
            .copied()
            .filter(|r| other.ranks.contains(r))
            .collect();
        self.with(v, self.me_world().filter(|w| other.ranks.contains(w)))
    }

    /// Members of this group not in `other`: MPI_Group_difference.
    pub fn difference(&self, other: &Group) -> Group {
        let v = self
            .ranks
            .iter()
            .copied()
            .filter(|r| !other.ranks.contains(r))
            .collect();
        self.with(v, self.me_world().filter(|w| !other.ranks.contains(w)))
    }

    /// [`Compare::Ident`] (same members, same order), [`Compare::Similar`] or
    /// [`Compare::Unequal`]: MPI_Group_compare.
    pub fn compare(&self, other: &Group) -> Compare {
        if self.ranks == other.ranks {
            return Compare::Ident;
        }
        let mut a = self.ranks.to_vec();
        let mut b = other.ranks.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        if a == b {
            Compare::Similar
        } else {
            Compare::Unequal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_and_translation() {
        let g = Group::from_world(vec![0, 1, 2, 3, 4], 2);
        let a = g.incl(&[4, 2, 0]).unwrap();
        assert_eq!(a.world_ranks(), &[4, 2, 0]);
        assert_eq!(a.rank(), Some(1));
        let b = g.excl(&[1, 2]).unwrap();
        assert_eq!(b.world_ranks(), &[0, 3, 4]);
        assert_eq!(b.rank(), None);
        assert_eq!(
            a.translate_ranks(&[0, 1, 2], &b).unwrap(),
            vec![Some(2), None, Some(0)]
        );
        assert_eq!(a.union(&b).world_ranks(), &[4, 2, 0, 3]);
        assert_eq!(a.intersection(&b).world_ranks(), &[4, 0]);
        assert_eq!(a.difference(&b).world_ranks(), &[2]);
        assert_eq!(a.compare(&g.incl(&[0, 2, 4]).unwrap()), Compare::Similar);
        assert_eq!(a.compare(&a.clone()), Compare::Ident);
        assert_eq!(a.compare(&b), Compare::Unequal);
        assert!(matches!(
            g.incl(&[5]),
            Err(Error::InvalidRank { rank: 5, size: 5 })
        ));
        assert!(matches!(
            g.incl(&[1, 1]),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
