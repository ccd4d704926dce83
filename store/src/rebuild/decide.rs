//! The pure part of a catalog rebuild: from the copies found on both tiers (what each file says about itself),
//! which segment is live, which is superseded and by what, which copy of a segment serves on each tier, and which
//! files cannot be used. No I/O; property-tested in `tests.rs`.
//!
//! The rules, each chosen so that a doubt keeps data in service rather than taking it out:
//! - A segment is superseded exactly when a usable file of another segment lists it among the inputs its rewrite
//!   retired (`tierd.lineage` in a Parquet footer). Only a rewrite's own output says so, so nothing else can retire
//!   a segment; a file without lineage (written before it was recorded) supersedes nothing. Several outputs that
//!   claim the same input (only a crash inside a stale rewrite's rollback leaves that) all stay live: queries
//!   deduplicate across segments, so an extra live copy of rows never changes an answer.
//! - Copies of one segment must hold the same bytes (size and crc32c; every copy tierd writes is a verified copy).
//!   When they differ, the content a cold copy holds wins (cold copies are only ever whole verified uploads), else
//!   the content most copies hold, else the smaller (size, crc32c); the other copies are quarantined.
//! - One copy per tier serves (`locations`); the others (copies a move took out of service and gc had not deleted
//!   yet) are recorded as dropped, for gc to delete after its grace period, so no file is left unknown.

use std::collections::{BTreeMap, BTreeSet};

use crate::layout::{Location, SegmentId, Tier};

/// One file found on a tier, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCopy {
    pub id: SegmentId,
    pub location: Location,
    /// Size and crc32c of the whole file.
    pub bytes: u64,
    pub checksum: u32,
    /// The segments its rewrite retired, from its footer; `None` when the file does not say (a row segment, or a
    /// Parquet file written before lineage was recorded).
    pub inputs: Option<Vec<SegmentId>>,
    /// Its rewrite was a user deletion's: the inputs' copies are to be erased.
    pub erase_inputs: bool,
}

/// What becomes of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFate {
    /// The copy that serves on each tier (hot first).
    pub locations: Vec<Location>,
    /// Other copies with the same bytes: out of service, for gc.
    pub dropped: Vec<Location>,
    /// The segments whose files list this one as an input, sorted; empty: live.
    pub superseded_by: Vec<SegmentId>,
    /// A superseding rewrite was a user deletion's.
    pub erase: bool,
    /// Size and crc32c of the content kept.
    pub bytes: u64,
    pub checksum: u32,
}

impl SegmentFate {
    pub fn is_live(&self) -> bool {
        self.superseded_by.is_empty()
    }
}

/// Why a file is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub location: Location,
    pub reason: String,
}

/// The decision over every copy found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub segments: BTreeMap<SegmentId, SegmentFate>,
    /// Copies whose bytes differ from the content chosen for their segment.
    pub rejected: Vec<Rejected>,
    /// Inputs claimed by more than one output: (input, the outputs). Kept live, reported.
    pub contested: Vec<(SegmentId, Vec<SegmentId>)>,
}

/// Decides over `copies` (any order; the result does not depend on it).
pub fn decide(copies: &[FoundCopy]) -> Decision {
    let mut by_id: BTreeMap<SegmentId, Vec<&FoundCopy>> = BTreeMap::new();
    for c in copies {
        by_id.entry(c.id).or_default().push(c);
    }
    let mut decision = Decision::default();
    let mut kept: BTreeMap<SegmentId, Vec<&FoundCopy>> = BTreeMap::new();
    for (id, mut group) in by_id {
        group.sort_by(|a, b| (a.location.tier, &a.location.path).cmp(&(b.location.tier, &b.location.path)));
        let content = chosen_content(&group);
        let (same, other): (Vec<&FoundCopy>, Vec<&FoundCopy>) =
            group.into_iter().partition(|c| (c.bytes, c.checksum) == content);
        for c in other {
            decision.rejected.push(Rejected {
                location: c.location.clone(),
                reason: format!(
                    "its bytes ({} bytes, crc32c {:#010x}) differ from the other copies of segment {id} ({} bytes, \
                     crc32c {:#010x})",
                    c.bytes, c.checksum, content.0, content.1
                ),
            });
        }
        kept.insert(id, same);
    }
    // Who claims whom: only outputs with a usable file and lineage; a segment never supersedes itself.
    let mut claims: BTreeMap<SegmentId, (BTreeSet<SegmentId>, bool)> = BTreeMap::new();
    for (id, group) in &kept {
        // Copies of one content hold one footer: the first copy speaks for all.
        let Some(first) = group.first() else { continue };
        for input in first.inputs.iter().flatten().filter(|i| *i != id) {
            let entry = claims.entry(*input).or_default();
            entry.0.insert(*id);
            entry.1 |= first.erase_inputs;
        }
    }
    for (id, group) in kept {
        let (superseded_by, erase) =
            claims.remove(&id).map(|(by, e)| (by.into_iter().collect(), e)).unwrap_or_default();
        let (locations, dropped) = serving(&group);
        let fate = SegmentFate {
            locations,
            dropped,
            superseded_by,
            erase,
            bytes: group[0].bytes,
            checksum: group[0].checksum,
        };
        if fate.superseded_by.len() > 1 {
            decision.contested.push((id, fate.superseded_by.clone()));
        }
        decision.segments.insert(id, fate);
    }
    // A contested input stays live (see the module documentation).
    for (id, _) in &decision.contested {
        if let Some(f) = decision.segments.get_mut(id) {
            f.superseded_by.clear();
            f.erase = false;
        }
    }
    decision.rejected.sort_by(|a, b| (a.location.tier, &a.location.path).cmp(&(b.location.tier, &b.location.path)));
    decision
}

/// The (size, crc32c) the segment keeps: a cold copy's, else the most copies', else the smallest.
fn chosen_content(group: &[&FoundCopy]) -> (u64, u32) {
    let mut votes: BTreeMap<(u64, u32), (bool, usize)> = BTreeMap::new();
    for c in group {
        let v = votes.entry((c.bytes, c.checksum)).or_default();
        v.0 |= c.location.tier == Tier::Cold;
        v.1 += 1;
    }
    // Highest (cold, count); among equals the smallest content (BTreeMap order, and max_by_key keeps the last max:
    // iterate in reverse so the first in key order wins).
    votes.into_iter().rev().max_by_key(|(_, v)| *v).map(|(content, _)| content).expect("a group has a copy")
}

/// One serving copy per tier: a move's copy (`<id>.<nonce>.<ext>`, the newest nonce) before the original name,
/// since moves write fresh names and the newest one is the last written; the rest are dropped.
fn serving(group: &[&FoundCopy]) -> (Vec<Location>, Vec<Location>) {
    let mut locations = Vec::new();
    let mut dropped = Vec::new();
    for tier in [Tier::Hot, Tier::Cold] {
        let mut on_tier: Vec<&Location> = group.iter().map(|c| &c.location).filter(|l| l.tier == tier).collect();
        on_tier.sort_by_key(|l| copy_rank(&l.path));
        if let Some(best) = on_tier.pop() {
            locations.push(best.clone());
            dropped.extend(on_tier.into_iter().cloned());
        }
    }
    (locations, dropped)
}

/// Orders copies of one tier: names with a nonce after those without, then by nonce.
fn copy_rank(path: &str) -> (bool, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [_, nonce, _] => (true, (*nonce).to_string()),
        _ => (false, name.to_string()),
    }
}
