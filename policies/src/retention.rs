//! Retention: how long each project's events are kept, and what removing the older ones takes.
//!
//! `[retention] default_days` (0 = forever) and `[retention.projects] NAME = days` give each project a retention;
//! an event is past it when its time is before the project's cutoff, `now - days x 24 h` ([`RetentionPolicy::cutoff_ms`],
//! to the millisecond). Readers hide such events at once (the daemon clamps every query and segment read to the
//! cutoff); the retention pass removes them from storage, as [`RetentionPolicy::plan`] says:
//!
//! - a sealed segment whose newest event is past the cutoff is retired whole ([`RetentionActionKind::Retire`]);
//!   garbage collection then deletes every copy through the trash, like any retired segment;
//! - a sealed segment whose oldest event is past the cutoff and newest is not straddles it: it is rewritten without
//!   the expired rows ([`RetentionActionKind::Rewrite`]);
//! - every other segment is left alone. Open segments are not planned (the hot writer still appends to them; readers
//!   hide their expired rows, and they are planned once sealed), nor retired ones.
//!
//! Side segments of removed duplicates follow the same rules (a copy of an expired event is expired too). Pure: the
//! plan is a function of `now_ms`, the segments and the prices; `tests/retention_properties.rs` checks that it
//! never touches a segment wholly inside retention, covers every expired event and does not depend on input order.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::cost::{Prices, StorageClass};
use crate::error::PolicyError;
use crate::human::bytes as human_bytes;
use crate::segment::{Placement, SegmentState};

/// One day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// `[retention]`: how many days each project keeps its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Days a project's events are kept, counted back from now; 0 = forever.
    pub default_days: u32,
    /// Per project (`[retention.projects] web = 90`): its days instead of `default_days` (0 = forever).
    pub projects: BTreeMap<String, u32>,
}

/// What the retention planner sees of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionSegment {
    /// Opaque, unique: a segment whose id occurs twice is ambiguous and left out.
    pub id: String,
    pub project: String,
    pub state: SegmentState,
    /// Rows stored (copies of events).
    pub rows: u64,
    pub bytes: u64,
    /// Time of the oldest and newest event.
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub placement: Placement,
    /// A side segment of removed duplicates (not read by queries), not a data segment.
    #[serde(default)]
    pub side: bool,
}

/// What retention does with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionActionKind {
    /// Every event is past retention: retired whole.
    Retire,
    /// It straddles the cutoff: rewritten without the expired rows.
    Rewrite,
}

impl RetentionActionKind {
    pub fn label(self) -> &'static str {
        match self {
            RetentionActionKind::Retire => "retire",
            RetentionActionKind::Rewrite => "rewrite",
        }
    }
}

/// One planned removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionAction {
    pub segment: String,
    pub project: String,
    pub kind: RetentionActionKind,
    /// Events before this time are removed.
    pub cutoff_ms: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Rows removed: all of them for a retirement; for a rewrite, an estimate from where the cutoff falls in the
    /// segment's time range (the rows themselves are only read by the pass).
    pub rows_removed_estimate: u64,
    /// Bytes freed once gc has deleted what the action retires, estimated as the rows.
    pub bytes_freed_estimate: u64,
    /// What storing the freed bytes costs a month where the segment lives (USD).
    pub monthly_saving: f64,
    pub placement: Placement,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub side: bool,
    pub reason: String,
}

/// What retention will remove, with its totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// By (project, segment id).
    pub actions: Vec<RetentionAction>,
    /// The cutoff of every project with a retention among the segments seen (ms).
    pub cutoffs: BTreeMap<String, i64>,
    pub segments_retired: u64,
    pub segments_rewritten: u64,
    pub rows_removed_estimate: u64,
    pub bytes_freed_estimate: u64,
    /// USD a month.
    pub monthly_saving: f64,
}

const POLICY: &str = "retention";

impl RetentionPolicy {
    /// Project names are those of the store (`[A-Za-z0-9_-]{1,64}`): an override for a name no project can have is a
    /// typo.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for name in self.projects.keys() {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            PolicyError::require(valid, POLICY, &format!("projects.{name}"), || {
                "is not a project name ([A-Za-z0-9_-], 1 to 64 characters)".to_string()
            })?;
        }
        Ok(())
    }

    /// Days `project` keeps its events (0 = forever).
    pub fn days(&self, project: &str) -> u32 {
        self.projects.get(project).copied().unwrap_or(self.default_days)
    }

    /// Whether any project has a retention at all.
    pub fn is_forever(&self) -> bool {
        self.default_days == 0 && self.projects.values().all(|d| *d == 0)
    }

    /// Events of `project` older than this (ms) are past retention at `now_ms`; `None`: kept forever.
    pub fn cutoff_ms(&self, project: &str, now_ms: i64) -> Option<i64> {
        match self.days(project) {
            0 => None,
            days => Some(now_ms.saturating_sub(i64::from(days) * DAY_MS)),
        }
    }

    /// What removing the events past retention at `now_ms` takes: see the module documentation.
    pub fn plan(&self, now_ms: i64, segments: &[RetentionSegment], prices: &Prices) -> RetentionPlan {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for s in segments {
            *seen.entry(s.id.as_str()).or_default() += 1;
        }
        let mut plan = RetentionPlan::default();
        let mut actions = Vec::new();
        for s in segments {
            let Some(cutoff) = self.cutoff_ms(&s.project, now_ms) else { continue };
            plan.cutoffs.insert(s.project.clone(), cutoff);
            if s.state != SegmentState::Sealed || s.rows == 0 || seen[s.id.as_str()] > 1 || s.min_time_ms >= cutoff {
                continue;
            }
            let days = self.days(&s.project);
            let (kind, rows_removed, reason) = if s.max_time_ms < cutoff {
                let reason = format!(
                    "every event is past the {days}-day retention of {}: newest at {} ms, cutoff {cutoff} ms",
                    s.project, s.max_time_ms
                );
                (RetentionActionKind::Retire, s.rows, reason)
            } else {
                let estimate = straddling_estimate(s, cutoff);
                let reason = format!(
                    "straddles the {days}-day retention of {}: events from {} to {} ms, cutoff {cutoff} ms \
                     (about {estimate} of {} rows expired)",
                    s.project, s.min_time_ms, s.max_time_ms, s.rows
                );
                (RetentionActionKind::Rewrite, estimate, reason)
            };
            let bytes_freed = scale(s.bytes, rows_removed, s.rows);
            let monthly_saving = storage_monthly(bytes_freed, s.placement, prices);
            actions.push(RetentionAction {
                segment: s.id.clone(),
                project: s.project.clone(),
                kind,
                cutoff_ms: cutoff,
                rows: s.rows,
                bytes: s.bytes,
                rows_removed_estimate: rows_removed,
                bytes_freed_estimate: bytes_freed,
                monthly_saving,
                placement: s.placement,
                side: s.side,
                reason: format!("{reason}; frees about {}", human_bytes(bytes_freed)),
            });
        }
        actions.sort_by(|a, b| (&a.project, &a.segment).cmp(&(&b.project, &b.segment)));
        for a in &actions {
            match a.kind {
                RetentionActionKind::Retire => plan.segments_retired += 1,
                RetentionActionKind::Rewrite => plan.segments_rewritten += 1,
            }
            plan.rows_removed_estimate = plan.rows_removed_estimate.saturating_add(a.rows_removed_estimate);
            plan.bytes_freed_estimate = plan.bytes_freed_estimate.saturating_add(a.bytes_freed_estimate);
        }
        // Summed in the actions' order, so that the total does not depend on the input's; folded from +0.0 (an
        // empty f64 sum is -0.0, which would show as `-0` in the JSON).
        plan.monthly_saving = actions.iter().map(|a| a.monthly_saving).fold(0.0, |a, b| a + b);
        plan.actions = actions;
        plan
    }
}

/// Rows of a straddling segment before `cutoff`, if its rows were spread evenly over its time range: at least one
/// (its oldest is expired), at most all but one (its newest is not).
fn straddling_estimate(s: &RetentionSegment, cutoff: i64) -> u64 {
    let span = (i128::from(s.max_time_ms) - i128::from(s.min_time_ms) + 1).max(1);
    let before = (i128::from(cutoff) - i128::from(s.min_time_ms)).clamp(0, span);
    let estimate = (i128::from(s.rows) * before / span) as u64;
    estimate.clamp(1, s.rows.saturating_sub(1).max(1))
}

/// `total` scaled by `part / whole`.
fn scale(total: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    (u128::from(total) * u128::from(part.min(whole)) / u128::from(whole)) as u64
}

/// A month of storing `bytes` where `placement` says (both tiers for `both`).
fn storage_monthly(bytes: u64, placement: Placement, prices: &Prices) -> f64 {
    let hot = prices.storage_monthly(bytes, StorageClass::Hot);
    let cold = prices.storage_monthly(bytes, StorageClass::Cold);
    match placement {
        Placement::Hot => hot,
        Placement::Cold => cold,
        Placement::Both => hot + cold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: &str, project: &str, min: i64, max: i64) -> RetentionSegment {
        RetentionSegment {
            id: id.into(),
            project: project.into(),
            state: SegmentState::Sealed,
            rows: 100,
            bytes: 1 << 30,
            min_time_ms: min,
            max_time_ms: max,
            placement: Placement::Cold,
            side: false,
        }
    }

    #[test]
    fn projects_override_the_default_and_zero_is_forever() {
        let p = RetentionPolicy { default_days: 30, projects: [("web".into(), 90), ("keep".into(), 0)].into() };
        let now = 100 * DAY_MS;
        assert_eq!(p.cutoff_ms("other", now), Some(70 * DAY_MS));
        assert_eq!(p.cutoff_ms("web", now), Some(10 * DAY_MS));
        assert_eq!(p.cutoff_ms("keep", now), None);
        assert!(RetentionPolicy::default().is_forever() && !p.is_forever());
        assert!(p.validate().is_ok());
        let bad = RetentionPolicy { default_days: 0, projects: [("we b".into(), 1)].into() };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("projects.we b") && e.contains("project name"), "{e}");
    }

    #[test]
    fn plans_retirements_rewrites_and_their_saving() {
        let p = RetentionPolicy { default_days: 30, projects: Default::default() };
        let now = 100 * DAY_MS;
        let cutoff = 70 * DAY_MS;
        let mut open = seg("open", "a", 0, 1);
        open.state = SegmentState::Open;
        let segments = vec![
            seg("old", "a", 0, cutoff - 1),
            seg("straddles", "a", cutoff - DAY_MS / 4, cutoff + 3 * DAY_MS / 4 - 1),
            seg("young", "a", cutoff, now),
            open,
        ];
        let plan = p.plan(now, &segments, &Prices::default());
        let kinds: Vec<(&str, RetentionActionKind, u64)> =
            plan.actions.iter().map(|a| (a.segment.as_str(), a.kind, a.rows_removed_estimate)).collect();
        // A quarter of the straddling segment's time range is before the cutoff: about 25 of its 100 rows.
        assert_eq!(
            kinds,
            vec![("old", RetentionActionKind::Retire, 100), ("straddles", RetentionActionKind::Rewrite, 25)]
        );
        assert_eq!((plan.segments_retired, plan.segments_rewritten, plan.rows_removed_estimate), (1, 1, 125));
        // 1 GiB retired and a quarter GiB rewritten away, cold at $0.023 per GiB-month: 1.25 x 0.023 = $0.02875.
        assert_eq!(plan.bytes_freed_estimate, (1 << 30) + (1 << 28));
        assert!((plan.monthly_saving - 0.02875).abs() < 1e-12, "{}", plan.monthly_saving);
        assert_eq!(plan.cutoffs, [("a".to_string(), cutoff)].into());
        assert!(plan.actions[0].reason.contains("30-day retention of a"), "{}", plan.actions[0].reason);
        let empty = p.plan(now, &[], &Prices::default());
        assert!(empty.monthly_saving.is_sign_positive(), "no -0 in the JSON");
    }
}
