//! Garbage collection decisions: which copies of segment data may be deleted now, and why every other one stays.
//!
//! The invariant this module keeps: **never delete what a reader may still read.** A copy (a hot file or a cold
//! object) that a committed catalog change took out of service is chosen for deletion only when none of these holds
//! it, checked in this order (the first that holds is the reason given for keeping it):
//! - a live lease (expiring after `now`) lists its segment: query nodes hold leases between a lookup and their
//!   reads, so the copy may be read until the lease ends;
//! - an in-process reader pins a catalog generation older than the change that took the copy out of service
//!   (`pinned < generation`): that snapshot still lists the copy. A pin at the change's generation or later sees
//!   the catalog after the change and no longer names the copy;
//! - the grace period since the change has not passed (`now < at + grace`);
//! - the process started less than one lease TTL ago (`now < started_at + lease_ttl`): a lease granted just before
//!   a crash may not have reached the disk, so the leases alone cannot be trusted yet.
//!
//! An object in the cold tier's segment prefix that no catalog record and no move intent names is an orphan (the
//! upload of a crashed move) only once it is older than the grace period; younger, it may be an upload in progress
//! and is kept. A copy a live segment needs that the cold tier does not list is reported as missing, never
//! "repaired" by forgetting it. A side segment of removed duplicates is expired (retired) at its `keep_until_ms`,
//! after which it follows the rules above. A trash entry is purged once the trash retention has passed since it
//! was trashed; an entry whose time cannot be read is never purged.
//!
//! Erasure (user deletions): a copy out of service that may hold rows a deletion request removes is marked `erase`.
//! It keeps every rule above that protects readers (leases, pins, grace, restart); only its stay in the trash is
//! shorter: `erase_trash_retention_ms` instead of `trash_retention_ms`. At 0 it skips the trash: [`GcAction::Erase`]
//! deletes it for good at once, because keeping erased data for a day may itself breach the request. Above 0 it
//! goes to the trash ([`GcAction::Delete`]) and its trashed copies (given as [`ErasedTrash`]) are purged once that
//! shorter retention has passed, before their batch's own.
//!
//! Everything here is a pure function of its inputs: `store::gc` lists the catalog, the leases, the pins, the cold
//! tier and the trash, calls [`GcPolicy::plan`], and carries the decisions out. The segment id `S` and the copy's
//! location `L` are the caller's own types, handed back untouched in each [`GcDecision`]; the reasons are the
//! texts that `tierd gc --dry-run` and the pass report print.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::Hash;

use serde::Serialize;

/// What GC does with one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcAction {
    /// Out of service and held by nothing: to the trash.
    Delete,
    /// Out of service but still held (the reason says by what), or an unknown object younger than the grace.
    Keep,
    /// A live side segment of duplicates whose retention ended: retired now, deleted after the grace.
    Expire,
    /// An object under `segments/` that the catalog does not know, older than the grace: to the trash.
    Orphan,
    /// A trash entry past its retention (or a trashed erased copy past the erasure retention): deleted for good.
    Purge,
    /// An erased copy (one that may hold rows a deletion removes) held by nothing, with an erasure retention of 0:
    /// deleted for good at once, without the trash.
    Erase,
    /// A copy a live segment needs that is not in the cold tier: reported, nothing done.
    Missing,
}

/// What GC decided for one copy (or trash entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcDecision<S, L> {
    /// The segment, when the copy belongs to one the catalog knows.
    pub id: Option<S>,
    pub location: L,
    pub bytes: u64,
    pub action: GcAction,
    pub reason: String,
}

/// The collector's waiting times, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// How long a copy stays after it was taken out of service, at least; also the age an unknown cold object must
    /// reach before it counts as an orphan.
    pub grace_ms: i64,
    /// The lease TTL handed to readers: nothing is deleted until the process has been up this long.
    pub lease_ttl_ms: i64,
    /// How long deleted copies stay in the trash before their final deletion.
    pub trash_retention_ms: i64,
    /// How long erased copies (see the [module docs](self)) stay in the trash; 0: they skip it.
    pub erase_trash_retention_ms: i64,
}

/// A reader's lease on some segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease<S> {
    pub id: String,
    /// The lease holds its segments while `now < expires_at_ms`.
    pub expires_at_ms: i64,
    pub segments: Vec<S>,
}

/// Why a copy left service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftService<S> {
    /// Its segment was retired (every copy), by a rewrite into these segments or at the end of a retention.
    Retired { replaced_by: Vec<S> },
    /// A move dropped this copy; the segment lives on elsewhere.
    Moved,
}

/// A copy that a committed catalog change took out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfService<S, L> {
    pub id: S,
    pub location: L,
    pub bytes: u64,
    /// When the change was committed.
    pub at_ms: i64,
    /// The catalog generation of that commit: snapshots older than it still list the copy.
    pub generation: u64,
    pub cause: LeftService<S>,
    /// It may hold rows a deletion request removes: its trash retention is the erasure one.
    pub erase: bool,
}

/// A live side segment holding the duplicates that the rewrite into `of` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideSegment<S, L> {
    pub id: S,
    pub of: S,
    /// Its live copies.
    pub locations: Vec<L>,
    pub bytes: u64,
    /// Retention end: from then on the side segment is expired.
    pub keep_until_ms: i64,
}

/// One object listed under the cold tier's segment prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdObject<L> {
    pub location: L,
    pub bytes: u64,
    /// When the object store says it was written.
    pub written_at_ms: i64,
}

/// A cold copy that a live segment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededCopy<S, L> {
    pub id: S,
    pub location: L,
    pub bytes: u64,
    pub rows: u64,
}

/// One entry of the trash (a cold object or a hot trash directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry<L> {
    pub location: L,
    pub bytes: u64,
    /// When it was trashed, read from its name; `None` when the name holds no time (never purged).
    pub since_ms: Option<i64>,
}

/// A trashed copy of an erased segment (one whose saved record is marked `erase`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedTrash<S, L> {
    pub id: S,
    /// Where the copy waits in the trash.
    pub location: L,
    pub bytes: u64,
    /// When it was trashed (its batch time).
    pub since_ms: i64,
}

/// Everything one GC run decides over, gathered by the caller from one catalog snapshot and the tiers' listings.
#[derive(Debug, Clone)]
pub struct GcInputs<S, L> {
    /// When the process started: nothing is deleted within one lease TTL of it.
    pub started_at_ms: i64,
    /// The leases readers hold; those that ended by `now` hold nothing.
    pub leases: Vec<Lease<S>>,
    /// The oldest catalog generation an in-process reader pins, if any.
    pub oldest_pinned_generation: Option<u64>,
    /// Copies out of service: each gets exactly one decision, delete or keep.
    pub out_of_service: Vec<OutOfService<S, L>>,
    /// Live side segments of duplicates: those past their retention are expired, one decision per copy.
    pub side_segments: Vec<SideSegment<S, L>>,
    /// What the cold tier lists under its segment prefix.
    pub cold_objects: Vec<ColdObject<L>>,
    /// Every cold location a catalog record (live or not) or a move intent names.
    pub known_cold: HashSet<L>,
    /// The cold copies live segments need.
    pub needed_cold: Vec<NeededCopy<S, L>>,
    /// The trash of both tiers: those past the retention are purged.
    pub trash: Vec<TrashEntry<L>>,
    /// The trashed copies of erased segments: those past the erasure retention are purged (unless their trash
    /// entry is due too, which purges them with it).
    pub erased_trash: Vec<ErasedTrash<S, L>>,
}

impl<S, L> Default for GcInputs<S, L> {
    /// Nothing to decide over: started at 0, no readers.
    fn default() -> Self {
        Self {
            started_at_ms: 0,
            leases: Vec::new(),
            oldest_pinned_generation: None,
            out_of_service: Vec::new(),
            side_segments: Vec::new(),
            cold_objects: Vec::new(),
            known_cold: HashSet::new(),
            needed_cold: Vec::new(),
            trash: Vec::new(),
            erased_trash: Vec::new(),
        }
    }
}

impl GcPolicy {
    /// Decides what to do now: one decision per copy out of service (delete or keep, in input order), then the
    /// expired side segments' copies, the unknown cold objects (orphan or keep), the missing cold copies, and the
    /// trash entries due for purging. Inputs that need nothing done (a known cold object, a side segment still
    /// kept, a young trash entry) get no decision.
    pub fn plan<S, L>(&self, now_ms: i64, inputs: &GcInputs<S, L>) -> Vec<GcDecision<S, L>>
    where
        S: Clone + Eq + Hash + Display,
        L: Clone + Eq + Hash,
    {
        let holders = lease_holders(now_ms, &inputs.leases);
        let mut out = Vec::new();
        for c in &inputs.out_of_service {
            let (action, reason) = match self.hold(now_ms, inputs, &holders, c) {
                Some(reason) => (GcAction::Keep, reason),
                None if c.erase && self.erase_trash_retention_ms <= 0 => (
                    GcAction::Erase,
                    format!(
                        "{}; may hold rows a deletion erases; no lease or reader holds it; grace passed; \
                         erasure retention 0: deleted without the trash",
                        left_service(c)
                    ),
                ),
                None if c.erase => (
                    GcAction::Delete,
                    format!(
                        "{}; may hold rows a deletion erases; no lease or reader holds it; grace passed; \
                         kept in the trash {} ms",
                        left_service(c),
                        self.erase_trash_retention_ms
                    ),
                ),
                None => (GcAction::Delete, format!("{}; no lease or reader holds it; grace passed", left_service(c))),
            };
            out.push(GcDecision {
                id: Some(c.id.clone()),
                location: c.location.clone(),
                bytes: c.bytes,
                action,
                reason,
            });
        }
        out.extend(expiries(now_ms, &inputs.side_segments));
        out.extend(self.reconcile_cold(now_ms, inputs));
        out.extend(self.trash_due(now_ms, &inputs.trash));
        out.extend(self.erased_due(now_ms, &inputs.erased_trash));
        out
    }

    /// Trashed copies of erased segments past the erasure retention, whose trash entry is not due yet (when it is,
    /// its purge takes them along).
    fn erased_due<S: Clone, L: Clone>(&self, now_ms: i64, erased: &[ErasedTrash<S, L>]) -> Vec<GcDecision<S, L>> {
        let due = |e: &&ErasedTrash<S, L>| {
            now_ms >= e.since_ms.saturating_add(self.erase_trash_retention_ms.max(0))
                && now_ms < e.since_ms.saturating_add(self.trash_retention_ms)
        };
        erased
            .iter()
            .filter(due)
            .map(|e| GcDecision {
                id: Some(e.id.clone()),
                location: e.location.clone(),
                bytes: e.bytes,
                action: GcAction::Purge,
                reason: format!("erased by a deletion; in the trash since {}, past the erasure retention", e.since_ms),
            })
            .collect()
    }

    /// Why a copy out of service must stay, if it must; see the [module docs](self) for the order of the rules.
    fn hold<S: Eq + Hash, L: Eq + Hash>(
        &self,
        now_ms: i64,
        inputs: &GcInputs<S, L>,
        holders: &HashMap<&S, (&str, i64)>,
        c: &OutOfService<S, L>,
    ) -> Option<String> {
        let generation = c.generation;
        let grace_until = c.at_ms.saturating_add(self.grace_ms);
        let trusted_from = inputs.started_at_ms.saturating_add(self.lease_ttl_ms);
        if let Some((lease, until)) = holders.get(&c.id) {
            Some(format!("held by lease {lease} until {until}"))
        } else if let Some(g) = inputs.oldest_pinned_generation.filter(|g| *g < generation) {
            Some(format!("a reader holds catalog generation {g} (< {generation}, when it left service)"))
        } else if now_ms < grace_until {
            Some(format!("grace period until {grace_until}"))
        } else if now_ms < trusted_from {
            Some(format!("restarted recently: leases from before the restart may be lost; wait until {trusted_from}"))
        } else {
            None
        }
    }

    /// Unknown cold objects (orphans once older than the grace, else kept: maybe an upload in progress), then the
    /// cold copies live segments need that the cold tier does not list.
    fn reconcile_cold<S, L>(&self, now_ms: i64, inputs: &GcInputs<S, L>) -> Vec<GcDecision<S, L>>
    where
        S: Clone + Eq + Hash + Display,
        L: Clone + Eq + Hash,
    {
        let mut out = Vec::new();
        for o in inputs.cold_objects.iter().filter(|o| !inputs.known_cold.contains(&o.location)) {
            let written = o.written_at_ms;
            let (action, reason) = if now_ms >= written.saturating_add(self.grace_ms) {
                (GcAction::Orphan, format!("no catalog record names it; written at {written}, past the grace"))
            } else {
                (GcAction::Keep, format!("unknown object written at {written}: may be an upload in progress"))
            };
            out.push(GcDecision { id: None, location: o.location.clone(), bytes: o.bytes, action, reason });
        }
        let listed: HashSet<&L> = inputs.cold_objects.iter().map(|o| &o.location).collect();
        for n in inputs.needed_cold.iter().filter(|n| !listed.contains(&n.location)) {
            out.push(GcDecision {
                id: Some(n.id.clone()),
                location: n.location.clone(),
                bytes: n.bytes,
                action: GcAction::Missing,
                reason: format!("segment {} ({} rows) needs it; the cold tier does not list it", n.id, n.rows),
            });
        }
        out
    }

    /// Trash entries whose retention has passed.
    fn trash_due<S, L: Clone>(&self, now_ms: i64, trash: &[TrashEntry<L>]) -> Vec<GcDecision<S, L>> {
        let due =
            |e: &&TrashEntry<L>| e.since_ms.is_some_and(|ms| now_ms >= ms.saturating_add(self.trash_retention_ms));
        trash
            .iter()
            .filter(due)
            .map(|e| GcDecision {
                id: None,
                location: e.location.clone(),
                bytes: e.bytes,
                action: GcAction::Purge,
                reason: format!("in the trash since {}, past the retention", e.since_ms.unwrap_or_default()),
            })
            .collect()
    }
}

/// For each leased segment, the live lease that holds it longest (ties: the smallest lease id, so that the order
/// of the leases does not matter).
fn lease_holders<S: Eq + Hash>(now_ms: i64, leases: &[Lease<S>]) -> HashMap<&S, (&str, i64)> {
    let mut holders: HashMap<&S, (&str, i64)> = HashMap::new();
    for lease in leases.iter().filter(|l| l.expires_at_ms > now_ms) {
        let candidate = (lease.id.as_str(), lease.expires_at_ms);
        for id in &lease.segments {
            let e = holders.entry(id).or_insert(candidate);
            if (candidate.1, std::cmp::Reverse(candidate.0)) > (e.1, std::cmp::Reverse(e.0)) {
                *e = candidate;
            }
        }
    }
    holders
}

/// How a copy left service, for its decision's reason.
fn left_service<S: Display, L>(c: &OutOfService<S, L>) -> String {
    match &c.cause {
        LeftService::Retired { replaced_by } => format!(
            "retired at {} by generation {} (replaced by {:?})",
            c.at_ms,
            c.generation,
            replaced_by.iter().map(ToString::to_string).collect::<Vec<_>>()
        ),
        LeftService::Moved => format!("moved away at {} by generation {}", c.at_ms, c.generation),
    }
}

/// The side segments past their retention, one decision per live copy.
fn expiries<S, L>(now_ms: i64, sides: &[SideSegment<S, L>]) -> Vec<GcDecision<S, L>>
where
    S: Clone + Display,
    L: Clone,
{
    let mut out = Vec::new();
    for s in sides.iter().filter(|s| now_ms >= s.keep_until_ms) {
        let reason =
            format!("duplicates removed by the rewrite into {}, kept until {}: retention ended", s.of, s.keep_until_ms);
        for location in &s.locations {
            out.push(GcDecision {
                id: Some(s.id.clone()),
                location: location.clone(),
                bytes: s.bytes,
                action: GcAction::Expire,
                reason: reason.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
