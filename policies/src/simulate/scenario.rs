//! The scenarios a simulation compares, each a placement policy deciding on the simulated store at every planning
//! tick (and, for `age-only`, on every read):
//!
//! - `all-hot`: every segment stays on the hot disk in the ingest codec; nothing moves, nothing is rewritten.
//! - `age-only`: an S3-Intelligent-Tiering-like rule on age since last access, without rewrites: a segment not
//!   read for `cold_after_ms` (30 days) goes to the cold tier (`StorageClass::Cold`), after `colder_after_ms`
//!   (90 days) its cold copy drops to `StorageClass::ColdInfrequent` (free, as IT's own transitions are), and a
//!   read of a cold segment brings it back to the frequent tier, the hot disk, as IT does on access (the read
//!   itself is served from the cold tier).
//! - `tierd`: the configured policy, fed exactly what the daemon feeds it: the recompress ladder over segments with
//!   a hot copy (the rewriter reads only those), and the placement planner over every segment, both on the same
//!   snapshot of stats with heat; every action applied.

use serde::{Deserialize, Serialize};

use crate::cost::StorageClass;
use crate::placement::{MoveDirection, PlacementPlanner};
use crate::planner::RewritePlanner as _;
use crate::recompress::RecompressPlanner;
use crate::segment::Placement;

use super::state::{SimAction, SimStore};
use super::workload::DAY_MS;

/// `age-only`'s thresholds; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgeOnly {
    /// Not accessed for this long: cold. Default 30 days, S3 Intelligent-Tiering's Infrequent Access threshold.
    pub cold_after_ms: i64,
    /// Not accessed for this long: the colder class. Default 90 days (IT's Archive Instant Access threshold).
    pub colder_after_ms: i64,
}

impl Default for AgeOnly {
    fn default() -> Self {
        AgeOnly { cold_after_ms: 30 * DAY_MS, colder_after_ms: 90 * DAY_MS }
    }
}

/// tierd's policy as the daemon runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TierdPolicy {
    pub recompress: RecompressPlanner,
    pub placement: PlacementPlanner,
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

    /// The actions due at `now_ms`.
    pub(crate) fn plan(&self, store: &SimStore<'_>, now_ms: i64) -> Vec<SimAction> {
        match self {
            Scenario::AllHot => Vec::new(),
            Scenario::AgeOnly(a) => {
                let mut out = Vec::new();
                for (seg, s) in store.segments.iter().enumerate() {
                    let idle = now_ms - s.last_access_ms;
                    if s.stats.placement == Placement::Hot && idle >= a.cold_after_ms {
                        out.push(SimAction::Move { seg, to: Placement::Cold, class: StorageClass::Cold });
                    } else if s.has_cold() && s.cold_class == StorageClass::Cold && idle >= a.colder_after_ms {
                        out.push(SimAction::Reclass { seg, class: StorageClass::ColdInfrequent });
                    }
                }
                out
            }
            Scenario::Tierd(p) => {
                let snapshot = store.snapshot(now_ms);
                let index = |id: &str| store.index(id).expect("planned segment exists");
                let with_hot: Vec<_> =
                    snapshot.iter().filter(|s| s.placement != Placement::Cold).cloned().collect();
                let mut out: Vec<SimAction> = p
                    .recompress
                    .plan(now_ms, &with_hot)
                    .into_iter()
                    .flat_map(|a| {
                        let codec = a.output_codec;
                        a.inputs.into_iter().map(move |id| (id, codec.clone()))
                    })
                    .map(|(id, codec)| SimAction::Recompress { seg: index(&id), codec })
                    .collect();
                for direction in [MoveDirection::ToCold, MoveDirection::ToHot] {
                    for m in p.placement.plan(now_ms, &snapshot, direction) {
                        let to = match direction {
                            MoveDirection::ToCold => Placement::Cold,
                            MoveDirection::ToHot => Placement::Hot,
                        };
                        out.push(SimAction::Move { seg: index(&m.segment), to, class: StorageClass::Cold });
                    }
                }
                out
            }
        }
    }
}
