//! Consumer groups, kept in the metadata group's state: members, generation, partition
//! ownership, and committed offsets. Applied deterministically on every replica.
//!
//! Ownership moves in two steps so that a partition never has two consumers in one group:
//! a rebalance computes a *target* owner for every partition; a partition whose current owner
//! is still a live member keeps that owner until the member releases it (after committing),
//! or leaves, or its session expires. Only then does the target become the owner.
//!
//! The committed offset of a partition is the next offset to read, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A topic partition.
pub type TopicPartition = (String, u32);

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// The client's self-chosen name.
    pub client_id: String,
    /// Subscribed topics.
    pub topics: BTreeSet<String>,
    /// Session timeout.
    pub session_timeout_ms: u64,
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Bumped by every rebalance that changes the target assignment or the membership.
    pub generation: u64,
    /// Members by member id.
    pub members: BTreeMap<String, MemberState>,
    /// Who may consume (and commit) each partition now.
    pub owners: BTreeMap<TopicPartition, String>,
    /// Who should own each partition once revocations complete.
    pub target: BTreeMap<TopicPartition, String>,
    /// Committed offsets: the next offset to read.
    pub offsets: BTreeMap<TopicPartition, u64>,
}

/// Why a group operation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupError {
    /// No such group.
    GroupNotFound,
    /// No such member (never joined, left, or expired).
    UnknownMember,
    /// The request carries an old generation.
    Fenced {
        /// The group's current generation.
        current: u64,
    },
    /// The member does not own this partition.
    NotAssigned(TopicPartition),
    /// The group has members; the operation needs an empty group.
    NotEmpty,
}

impl GroupState {
    /// Partitions `member` owns now, sorted.
    pub fn owned_by(&self, member: &str) -> Vec<TopicPartition> {
        self.owners
            .iter()
            .filter(|(_, m)| m.as_str() == member)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Partitions `member` owns but must give up (their target is another member).
    pub fn revoking(&self, member: &str) -> Vec<TopicPartition> {
        self.owners
            .iter()
            .filter(|(tp, m)| {
                m.as_str() == member && self.target.get(*tp).map(String::as_str) != Some(member)
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Recomputes the target assignment over `partitions` (topic -> partition count) and moves
    /// ownership where no live owner stands in the way. Bumps the generation when anything
    /// changed.
    pub fn rebalance(&mut self, partitions: &BTreeMap<String, u32>, force_new_generation: bool) {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter())
            .collect();
        let mut target = BTreeMap::new();
        for topic in subscribed {
            let Some(&n) = partitions.get(topic) else {
                continue;
            };
            let eligible: Vec<&String> = self
                .members
                .iter()
                .filter(|(_, m)| m.topics.contains(topic))
                .map(|(id, _)| id)
                .collect();
            for (p, m) in sticky_assign(topic, n, &eligible, &self.target) {
                target.insert((topic.clone(), p), m);
            }
        }
        let changed = target != self.target;
        self.target = target;
        // Owners that left, or partitions that vanished, free their partitions at once.
        self.owners
            .retain(|tp, m| self.members.contains_key(m) && self.target.contains_key(tp));
        for (tp, m) in &self.target {
            self.owners.entry(tp.clone()).or_insert_with(|| m.clone());
        }
        if changed || force_new_generation {
            self.generation += 1;
        }
    }

    /// The member acknowledges the current generation: partitions it must give up go to their
    /// targets.
    pub fn release(&mut self, member: &str, generation: u64) -> Result<(), GroupError> {
        self.check_member(member, generation)?;
        for tp in self.revoking(member) {
            match self.target.get(&tp) {
                Some(t) => {
                    let t = t.clone();
                    self.owners.insert(tp, t);
                }
                None => {
                    self.owners.remove(&tp);
                }
            }
        }
        Ok(())
    }

    /// Checks that `member` exists and speaks for the current generation.
    pub fn check_member(&self, member: &str, generation: u64) -> Result<(), GroupError> {
        if !self.members.contains_key(member) {
            return Err(GroupError::UnknownMember);
        }
        if generation != self.generation {
            return Err(GroupError::Fenced {
                current: self.generation,
            });
        }
        Ok(())
    }

    /// Commits offsets for partitions `member` owns, all or nothing.
    pub fn commit(
        &mut self,
        member: &str,
        generation: u64,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<(), GroupError> {
        self.check_member(member, generation)?;
        for (tp, _) in offsets {
            if self.owners.get(tp).map(String::as_str) != Some(member) {
                return Err(GroupError::NotAssigned(tp.clone()));
            }
        }
        for (tp, o) in offsets {
            self.offsets.insert(tp.clone(), *o);
        }
        Ok(())
    }
}

/// Sticky, balanced assignment of `n` partitions of `topic` over `members` (sorted ids):
/// every member gets `n / k` or `n / k + 1` partitions, and a partition keeps its previous
/// member whenever that member is still eligible and under its quota.
pub fn sticky_assign(
    topic: &str,
    n: u32,
    members: &[&String],
    previous: &BTreeMap<TopicPartition, String>,
) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    let k = members.len() as u32;
    if k == 0 {
        return out;
    }
    let base = n / k;
    let mut extra = n % k;
    let mut counts: BTreeMap<&str, u32> = members.iter().map(|m| (m.as_str(), 0)).collect();
    // Keep previous owners up to the base quota, then grant the few extra slots to previous
    // owners first.
    for pass in 0..2 {
        for p in 0..n {
            if out.contains_key(&p) {
                continue;
            }
            let Some(prev) = previous.get(&(topic.to_string(), p)) else {
                continue;
            };
            let Some(c) = counts.get_mut(prev.as_str()) else {
                continue;
            };
            let fits = if pass == 0 {
                *c < base
            } else {
                *c == base && extra > 0
            };
            if fits {
                if pass == 1 {
                    extra -= 1;
                }
                *c += 1;
                out.insert(p, prev.clone());
            }
        }
    }
    // The rest go to the least-loaded members, in id order.
    for p in 0..n {
        if out.contains_key(&p) {
            continue;
        }
        let pick = members
            .iter()
            .filter(|m| {
                let c = counts[m.as_str()];
                c < base || (c == base && extra > 0)
            })
            .min_by_key(|m| (counts[m.as_str()], m.as_str()));
        if let Some(m) = pick {
            let c = counts.get_mut(m.as_str()).map(|c| {
                *c += 1;
                *c
            });
            if c == Some(base + 1) {
                extra = extra.saturating_sub(1);
            }
            out.insert(p, (*m).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{i}")).collect()
    }

    fn counts(a: &BTreeMap<u32, String>) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for m in a.values() {
            *c.entry(m.clone()).or_insert(0) += 1;
        }
        c
    }

    #[test]
    fn balanced_and_complete() {
        for n in 0..13u32 {
            for k in 1..9usize {
                let members = ids(k);
                let refs: Vec<&String> = members.iter().collect();
                let a = sticky_assign("t", n, &refs, &BTreeMap::new());
                assert_eq!(a.len() as u32, n);
                let c = counts(&a);
                let (min, max) = (
                    c.values().min().copied().unwrap_or(0),
                    c.values().max().copied().unwrap_or(0),
                );
                assert!(
                    max - min <= 1 || c.len() < k && max <= 1,
                    "n={n} k={k} {c:?}"
                );
                assert!(c.len() <= (n as usize).min(k));
            }
        }
    }

    #[test]
    fn sticky_when_a_member_joins() {
        let three = ids(3);
        let refs: Vec<&String> = three.iter().collect();
        let before = sticky_assign("t", 6, &refs, &BTreeMap::new());
        let prev: BTreeMap<TopicPartition, String> = before
            .iter()
            .map(|(p, m)| (("t".to_string(), *p), m.clone()))
            .collect();
        let four = ids(4);
        let refs: Vec<&String> = four.iter().collect();
        let after = sticky_assign("t", 6, &refs, &prev);
        let moved = (0..6).filter(|p| before[p] != after[p]).count();
        assert_eq!(
            moved, 1,
            "only the new member's share moves: {before:?} -> {after:?}"
        );
    }

    fn group_with(members: &[&str]) -> GroupState {
        let mut g = GroupState::default();
        for m in members {
            g.members.insert(
                m.to_string(),
                MemberState {
                    client_id: "c".into(),
                    topics: ["t".to_string()].into(),
                    session_timeout_ms: 10_000,
                },
            );
        }
        g
    }

    #[test]
    fn a_partition_never_has_two_owners_and_moves_after_release() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 4)].into();
        let mut g = group_with(&["a"]);
        g.rebalance(&parts, false);
        assert_eq!(g.owned_by("a").len(), 4);
        let gen1 = g.generation;
        g.members.insert("b".into(), g.members["a"].clone());
        g.rebalance(&parts, true);
        assert!(g.generation > gen1);
        // b is targeted two partitions but a still owns them until it releases.
        assert_eq!(g.owned_by("b").len(), 0);
        assert_eq!(g.revoking("a").len(), 2);
        assert_eq!(
            g.release("a", gen1),
            Err(GroupError::Fenced {
                current: g.generation
            })
        );
        g.release("a", g.generation).unwrap();
        assert_eq!((g.owned_by("a").len(), g.owned_by("b").len()), (2, 2));
    }

    #[test]
    fn commits_are_fenced_by_generation_and_ownership() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 2)].into();
        let mut g = group_with(&["a", "b"]);
        g.rebalance(&parts, false);
        let gen = g.generation;
        let a_part = g.owned_by("a")[0].clone();
        let b_part = g.owned_by("b")[0].clone();
        g.commit("a", gen, &[(a_part.clone(), 5)]).unwrap();
        assert_eq!(
            g.commit("a", gen, &[(b_part.clone(), 7)]),
            Err(GroupError::NotAssigned(b_part))
        );
        assert_eq!(
            g.commit("a", gen - 1, &[(a_part.clone(), 9)]),
            Err(GroupError::Fenced { current: gen })
        );
        assert_eq!(
            g.commit("zombie", gen, &[(a_part.clone(), 9)]),
            Err(GroupError::UnknownMember)
        );
        assert_eq!(g.offsets[&a_part], 5, "refused commits change nothing");
    }

    #[test]
    fn extra_members_sit_idle() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 6)].into();
        let names: Vec<String> = ids(8);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut g = group_with(&refs);
        g.rebalance(&parts, false);
        let idle = names.iter().filter(|m| g.owned_by(m).is_empty()).count();
        assert_eq!(idle, 2);
    }
}
