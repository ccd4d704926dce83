//! The scenarios a simulation compares, each a placement policy deciding on the simulated store at every planning
//! tick (and, for `age-only`, on every read):
//!
//! - `all-hot`: every segment stays on the hot disk in the ingest codec; nothing moves, nothing is rewritten.
//! - `age-only`: an S3-Intelligent-Tiering-like rule on age since last access: a segment not read for
//!   `cold_after_ms` (30 days) goes to the cold tier (`StorageClass::Cold`), after `colder_after_ms` (90 days) its
//!   cold copy drops to `StorageClass::ColdInfrequent` (free, as IT's own transitions are), and a read of a cold
//!   segment brings it back to the frequent tier, the hot disk, as IT does on access (the read itself is served
//!   from the cold tier). Its compression is that of the store it runs on: with [`AgeOnly::ladder`] set (the
//!   daemon sets tierd's own recompress ladder unless `recompress = false`) its hot segments climb the same ladder
//!   as tierd's, so that the comparison is of placement alone; IT itself never rewrites, so cold segments stay as
//!   they went cold.
//! - `tierd`: the configured policy, fed what the daemon feeds it: the recompress ladder over segments with a hot
//!   copy (the rewriter reads only those) that no codec rule matches, then the real tiering planner
//!   ([`TieringPolicy::plan`]) over a snapshot of every segment's stats with heat, the hot disk's use and the
//!   prices; every Move, Recompress and Compact action is applied.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::cost::{Prices, StorageClass};
use crate::error::PolicyError;
use crate::planner::RewritePlanner as _;
use crate::recompress::RecompressPlanner;
use crate::segment::Placement;
use crate::tiering::{Capacity, TieringActionKind, TieringPolicy};

use super::state::{SimAction, SimStore};
use super::workload::DAY_MS;

/// `age-only`'s thresholds and compression; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgeOnly {
    /// Not accessed for this long: cold. Default 30 days, S3 Intelligent-Tiering's Infrequent Access threshold.
    pub cold_after_ms: i64,
    /// Not accessed for this long: the colder class. Default 90 days (IT's Archive Instant Access threshold).
    pub colder_after_ms: i64,
    /// Whether `age-only` runs on a store with tierd's recompress ladder (default true: the baseline gets the
    /// same compression, and only placement is compared). `false`: it keeps the ingest codec, like a plain store
    /// that never rewrites.
    pub recompress: bool,
    /// The ladder `age-only`'s hot segments climb; the daemon sets it from `[passes.recompress]` when
    /// `recompress` is true. `None`: no rewrites.
    #[serde(skip)]
    pub ladder: Option<RecompressPlanner>,
}

impl Default for AgeOnly {
    fn default() -> Self {
        AgeOnly { cold_after_ms: 30 * DAY_MS, colder_after_ms: 90 * DAY_MS, recompress: true, ladder: None }
    }
}

/// tierd's policy as the daemon runs it: the recompress ladder (`[passes.recompress]`) for segments no codec rule
/// matches, and the tiering planner (`[policy]`, `[cost]`) for placement, rule codecs and compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TierdPolicy {
    pub recompress: RecompressPlanner,
    pub tiering: TieringPolicy,
    /// The hot disk's size for the planner's capacity checks; 0 = unknown (unbounded, no fill watermark holds).
    pub hot_capacity_bytes: u64,
}

/// One scenario; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    AllHot,
    AgeOnly(AgeOnly),
    Tierd(Box<TierdPolicy>),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::AllHot => "all-hot",
            Scenario::AgeOnly(_) => "age-only",
            Scenario::Tierd(_) => "tierd",
        }
    }

    /// What the scenario does right after `seg` was read.
    pub(crate) fn on_read(&self, store: &SimStore<'_>, seg: usize) -> Option<SimAction> {
        match self {
            Scenario::AgeOnly(_) if store.segments[seg].stats.placement == Placement::Cold => {
                Some(SimAction::Move { seg, to: Placement::Hot, class: StorageClass::Cold })
            }
            _ => None,
        }
    }

    /// Plans at `now_ms` and carries the plan out, as the daemon's passes would: first the recompress ladder over
    /// segments with a hot copy and no codec rule, then the tiering planner over a fresh snapshot (a rewrite's
    /// output is a new segment, which the next plan may move).
    pub(crate) fn step(&self, store: &mut SimStore<'_>, prices: &Prices, now_ms: i64) -> Result<(), PolicyError> {
        for action in self.plan(store, now_ms) {
            store.apply(now_ms, &action)?;
        }
        if let Scenario::Tierd(p) = self {
            let capacity = Capacity { hot_bytes_capacity: p.hot_capacity_bytes, hot_bytes_used: store.hot_bytes() };
            let plan = p.tiering.plan(now_ms, &store.snapshot(now_ms), prices, &capacity);
            let mut compactions: BTreeMap<(String, i32, u64), Vec<usize>> = BTreeMap::new();
            for a in plan.actions {
                let seg = index(store, &a.segment);
                let action = match a.kind {
                    TieringActionKind::Move { to } => SimAction::Move { seg, to, class: StorageClass::Cold },
                    TieringActionKind::Recompress { codec } => SimAction::Recompress { seg, codec },
                    TieringActionKind::Compact { target_bytes } => {
                        compactions.entry((a.project, a.day, target_bytes)).or_default().push(seg);
                        continue;
                    }
                };
                store.apply(now_ms, &action)?;
            }
            for (_, mut segs) in compactions {
                segs.sort_unstable();
                store.apply(now_ms, &SimAction::Compact { segs })?;
            }
        }
        Ok(())
    }

    /// The actions of the scenario's own rules due at `now_ms` (for `tierd`, the recompress ladder's).
    fn plan(&self, store: &SimStore<'_>, now_ms: i64) -> Vec<SimAction> {
        match self {
            Scenario::AllHot => Vec::new(),
            Scenario::AgeOnly(a) => {
                let mut out = Vec::new();
                let mut moved = std::collections::HashSet::new();
                for (seg, s) in store.segments.iter().enumerate().filter(|(_, s)| !s.retired) {
                    let idle = now_ms - s.last_access_ms;
                    if s.stats.placement == Placement::Hot && idle >= a.cold_after_ms {
                        out.push(SimAction::Move { seg, to: Placement::Cold, class: StorageClass::Cold });
                        moved.insert(s.stats.id.clone());
                    } else if s.has_cold() && s.cold_class == StorageClass::Cold && idle >= a.colder_after_ms {
                        out.push(SimAction::Reclass { seg, class: StorageClass::ColdInfrequent });
                    }
                }
                if let Some(ladder) = &a.ladder {
                    let hot: Vec<_> = store
                        .snapshot(now_ms)
                        .into_iter()
                        .filter(|s| s.placement != Placement::Cold && !moved.contains(&s.id))
                        .collect();
                    out.extend(recompressions(store, ladder, now_ms, &hot));
                }
                out
            }
            Scenario::Tierd(p) => {
                let capacity = Capacity { hot_bytes_capacity: p.hot_capacity_bytes, hot_bytes_used: store.hot_bytes() };
                let ladder: Vec<_> = store
                    .snapshot(now_ms)
                    .into_iter()
                    .filter(|s| s.placement != Placement::Cold && p.tiering.codec_rule(now_ms, s, &capacity).is_none())
                    .collect();
                recompressions(store, &p.recompress, now_ms, &ladder)
            }
        }
    }
}

/// The recompress ladder's actions over `segments` (segments with a hot copy: the rewriter reads only those).
fn recompressions(
    store: &SimStore<'_>,
    ladder: &RecompressPlanner,
    now_ms: i64,
    segments: &[crate::SegmentStats],
) -> Vec<SimAction> {
    ladder
        .plan(now_ms, segments)
        .into_iter()
        .flat_map(|a| {
            let codec = a.output_codec;
            a.inputs.into_iter().map(move |id| (id, codec.clone()))
        })
        .map(|(id, codec)| SimAction::Recompress { seg: index(store, &id), codec })
        .collect()
}

fn index(store: &SimStore<'_>, id: &str) -> usize {
    store.index(id).expect("the planners only name segments of the snapshot")
}
