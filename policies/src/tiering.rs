//! The tiering planner: rules + heat + prices + hot capacity -> placement moves, codec steps and compaction
//! targets, each priced, with the bill before and after.
//!
//! Why a planner beside the rules: a rule says where a segment *should* live; whether moving it is worth it, and
//! safe for the system, is decided here, the same way for the daemon's passes, `tierd plan` and `tierd simulate`:
//!
//! - **Cost.** A move is planned only when its monthly saving over [`TieringPolicy::horizon_ms`] pays for its
//!   one-time transition cost (requests, retrieval, transfer), unless its rule has `force`. A segment's monthly cost
//!   in a placement is its storage there plus, when it is served from the cold tier, its reads priced as the
//!   object store bills them ([`monthly_cost`]): heat x GETs per read, heat_bytes x retrieval and transfer. That is
//!   what justifies a promotion: reads that cost more from the cold tier than the hot disk would.
//! - **Hysteresis.** A move to the cold tier needs heat <= [`TieringPolicy::cold_max_heat`], a move that brings
//!   data back to the hot disk needs heat >= [`TieringPolicy::hot_min_heat`] (which is larger), so a segment whose
//!   heat hovers around one threshold does not flap. A forcing rule overrides this, never the next two.
//! - **Residency.** No segment moves within [`TieringPolicy::min_residency_ms`] of its last move (`placed_at_ms`).
//! - **Capacity.** Moves that add bytes to the hot disk never take it past its capacity, nor past the lowest
//!   `hot_fill_above` watermark of the rules (a move freeing space in the same plan is not counted: the passes run
//!   separately, each from its own snapshot). A rule with `hot_fill_above` moves segments, coldest
//!   first, only until the fill is back at its watermark.
//! - **Per pass.** At most [`TieringPolicy::max_bytes_per_pass`] per direction (to the cold tier / to the hot disk),
//!   but at least one segment, so that a segment bigger than the limit still moves.
//!
//! One action per segment at most: a compaction first, else a recompression, else a move (a rewrite creates a new
//! segment, which the next pass may move). Only sealed columnar segments with a unique id are acted on: row segments
//! never go cold, and a duplicated id is a broken catalog invariant. The plan does not depend on input order.
//! Recompressions and compactions are listed with a zero cost delta: their effect on size is not known in advance.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::cost::{break_even_ms, Prices, StorageClass, GIB, MONTH_MS};
use crate::error::PolicyError;
use crate::human;
use crate::planner::{age_ms, RewritePlanner};
use crate::rules::{self, first_match, Rule, RuleContext};
use crate::segment::{Placement, SegmentFormat, SegmentState, SegmentStats};

const DAY_MS: i64 = 86_400_000;
const POLICY: &str = "policy";

/// The hot disk's size and use. `hot_bytes_capacity == 0` means unknown: unbounded, and no fill watermark holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub hot_bytes_capacity: u64,
    pub hot_bytes_used: u64,
}

impl Capacity {
    /// used / capacity, or `None` when the capacity is unknown.
    pub fn fill(&self) -> Option<f64> {
        (self.hot_bytes_capacity > 0).then(|| self.hot_bytes_used as f64 / self.hot_bytes_capacity as f64)
    }
}

/// The tiering policy; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieringPolicy {
    /// Ordered; first match per aspect wins ([`crate::rules`]).
    pub rules: Vec<Rule>,
    /// A move must pay for itself within this time.
    pub horizon_ms: i64,
    /// No move within this time of the segment's last one.
    pub min_residency_ms: i64,
    /// Hysteresis, going cold: heat at most this.
    pub cold_max_heat: f64,
    /// Hysteresis, coming back: heat at least this; larger than `cold_max_heat`.
    pub hot_min_heat: f64,
    /// Bytes one plan moves per direction (at least one segment).
    pub max_bytes_per_pass: u64,
    /// How a rule's compaction target is carried out: the compact pass's `min_inputs` and `small_fraction`
    /// ([`crate::CompactPlanner`]), so that the plan shows the merges the pass will make.
    pub compact_min_inputs: usize,
    pub compact_small_fraction: f64,
}

impl Default for TieringPolicy {
    fn default() -> Self {
        TieringPolicy {
            rules: rules::default_rules(),
            horizon_ms: 30 * DAY_MS,
            min_residency_ms: DAY_MS,
            cold_max_heat: rules::DEFAULT_COLD_MAX_HEAT,
            hot_min_heat: rules::DEFAULT_HOT_MIN_HEAT,
            max_bytes_per_pass: 64 << 30,
            compact_min_inputs: 2,
            compact_small_fraction: 0.5,
        }
    }
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TieringActionKind {
    /// Change the segment's placement (a crash-safe move by the migrate or promote pass).
    Move { to: Placement },
    /// Rewrite the segment with this codec (the recompress pass).
    Recompress { codec: String },
    /// Compact the small segments of its (project, day) towards this size (the compact pass).
    Compact { target_bytes: u64 },
}

impl TieringActionKind {
    /// `move`, `recompress`, `compact`: the `kind` label of metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TieringActionKind::Move { .. } => "move",
            TieringActionKind::Recompress { .. } => "recompress",
            TieringActionKind::Compact { .. } => "compact",
        }
    }
}

/// One planned action, with the rule that fired, why, and what it does to the bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieringAction {
    pub segment: String,
    pub project: String,
    pub day: i32,
    #[serde(flatten)]
    pub kind: TieringActionKind,
    /// Name of the rule that prescribed it.
    pub rule: String,
    /// Why, with the numbers behind it.
    pub reason: String,
    /// The segment's size.
    pub bytes: u64,
    /// Monthly cost after minus before (negative: a saving), USD.
    pub monthly_cost_delta: f64,
    /// One-time cost of carrying it out, USD.
    pub transition_cost: f64,
}

/// The bill of one tier or codec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TierCost {
    /// Segments and bytes before the plan.
    pub segments: u64,
    pub bytes: u64,
    /// And after it.
    pub segments_after: u64,
    pub bytes_after: u64,
    pub monthly_before: f64,
    pub monthly_after: f64,
}

/// A plan and its bill; the JSON of `tierd plan --json` and `GET /v1/plan`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TieringPlan {
    pub actions: Vec<TieringAction>,
    /// Monthly storage and cold-read cost of every segment, USD, before and after the plan.
    pub monthly_cost_before: f64,
    pub monthly_cost_after: f64,
    /// Sum of the actions' one-time costs.
    pub transition_cost: f64,
    /// When the monthly saving pays back the transition cost; `None` if it never does.
    pub break_even_ms: Option<i64>,
    /// By storage tier (`hot`, `cold`; a segment placed `both` counts in each).
    pub by_tier: BTreeMap<String, TierCost>,
    /// By codec.
    pub by_codec: BTreeMap<String, TierCost>,
}

/// Reads per day and bytes per day, cleaned of NaN and negatives.
fn heat(s: &SegmentStats) -> (f64, f64) {
    let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    (clean(s.heat), clean(s.heat_bytes))
}

/// Monthly cost of serving the segment's reads from the cold tier: GETs (whole blocks, at least one per read),
/// retrieval and transfer of the bytes read.
pub fn cold_reads_monthly(s: &SegmentStats, prices: &Prices) -> f64 {
    let (reads, bytes) = heat(s);
    if reads == 0.0 && bytes == 0.0 {
        return 0.0;
    }
    let block = prices.read_block_bytes.max(1) as f64;
    let gets_per_day = reads.max(bytes / block);
    let per_day = gets_per_day / 1000.0 * prices.get_per_1000
        + bytes / GIB * (prices.cold_retrieval_per_gb + prices.transfer_per_gb);
    per_day * (MONTH_MS / DAY_MS) as f64
}

/// Monthly cost of the segment in `placement`, split as (hot storage, cold storage + cold reads).
pub fn monthly_cost_split(s: &SegmentStats, placement: Placement, prices: &Prices) -> (f64, f64) {
    let hot = prices.storage_monthly(s.bytes, StorageClass::Hot);
    let cold = prices.storage_monthly(s.bytes, StorageClass::Cold);
    match placement {
        Placement::Hot => (hot, 0.0),
        Placement::Cold => (0.0, cold + cold_reads_monthly(s, prices)),
        Placement::Both => (hot, cold),
    }
}

/// Monthly cost of the segment in `placement`.
pub fn monthly_cost(s: &SegmentStats, placement: Placement, prices: &Prices) -> f64 {
    let (hot, cold) = monthly_cost_split(s, placement, prices);
    hot + cold
}

/// One-time cost of changing a segment of `bytes` from `from` to `to`: upload when a cold copy appears, download
/// when a hot copy appears, delete what goes away.
pub fn transition_cost(bytes: u64, from: Placement, to: Placement, prices: &Prices) -> f64 {
    let has =
        |p: Placement| (matches!(p, Placement::Hot | Placement::Both), matches!(p, Placement::Cold | Placement::Both));
    let ((hot0, cold0), (hot1, cold1)) = (has(from), has(to));
    let mut cost = 0.0;
    if cold1 && !cold0 {
        cost += prices.upload_cost(bytes, StorageClass::Cold);
    }
    if hot1 && !hot0 {
        cost += prices.read_cost(bytes, StorageClass::Cold);
    }
    if cold0 && !cold1 {
        cost += prices.delete_cost(StorageClass::Cold);
    }
    cost
}

/// Whether a move from `from` to `to` puts a copy on the hot disk (and so counts against its capacity).
fn adds_hot(from: Placement, to: Placement) -> bool {
    from == Placement::Cold && matches!(to, Placement::Hot | Placement::Both)
}

/// Whether a move from `from` to `to` counts in the to-hot direction (else to-cold).
pub fn is_to_hot(from: Placement, to: Placement) -> bool {
    adds_hot(from, to) || (from == Placement::Both && to == Placement::Hot)
}

struct Candidate<'a> {
    s: &'a SegmentStats,
    rule: &'a Rule,
    to: Placement,
    delta: f64,
    transition: f64,
    why: String,
}

impl TieringPolicy {
    /// Checks the configuration; the error names the field (and the rule).
    pub fn validate(&self) -> Result<(), PolicyError> {
        rules::validate_rules(&self.rules)?;
        PolicyError::require(self.horizon_ms > 0, POLICY, "horizon", || "is zero: give a time such as 30 days".into())?;
        PolicyError::require(self.min_residency_ms >= 0, POLICY, "min_residency", || "is negative".into())?;
        for (field, v) in [("cold_max_heat", self.cold_max_heat), ("hot_min_heat", self.hot_min_heat)] {
            PolicyError::require(v.is_finite() && v >= 0.0, POLICY, field, || format!("is {v}: give reads per day"))?;
        }
        PolicyError::require(self.hot_min_heat > self.cold_max_heat, POLICY, "hot_min_heat", || {
            format!(
                "is {} but cold_max_heat is {}: the heat to come back must be above the heat to go cold",
                self.hot_min_heat, self.cold_max_heat
            )
        })?;
        PolicyError::require(self.max_bytes_per_pass > 0, POLICY, "max_bytes_per_pass", || {
            "is zero: no segment could ever move".into()
        })?;
        self.compact_planner(1).validate()
    }

    /// The compact planner a compaction rule's `target_bytes` runs with (in the plan and in the compact pass).
    pub fn compact_planner(&self, target_bytes: u64) -> crate::CompactPlanner {
        crate::CompactPlanner {
            target_bytes,
            min_inputs: self.compact_min_inputs,
            small_fraction: self.compact_small_fraction,
        }
    }

    /// Hysteresis: a move that takes the hot copy away needs heat <= `cold_max_heat`, one that brings a hot copy
    /// needs heat >= `hot_min_heat`; adding or dropping only the cold copy (hot <-> both) does not change where reads
    /// are served and has no heat condition.
    pub fn keeps_hysteresis(&self, s: &SegmentStats, to: Placement) -> bool {
        let reads = heat(s).0;
        let (hot0, hot1) = (s.placement != Placement::Cold, to != Placement::Cold);
        match (hot0, hot1) {
            (true, false) => reads <= self.cold_max_heat,
            (false, true) => reads >= self.hot_min_heat,
            _ => true,
        }
    }

    /// Most bytes the hot disk may hold after promotions: its capacity, or less when a rule evicts above a fill
    /// watermark (promoting past it would only make that rule evict again). `None` when the capacity is unknown.
    pub fn promotion_limit(&self, capacity: &Capacity) -> Option<u64> {
        let cap = capacity.hot_bytes_capacity;
        (cap > 0).then(|| {
            self.rules.iter().filter_map(|r| r.hot_fill_above).map(|w| (w * cap as f64) as u64).fold(cap, u64::min)
        })
    }

    /// The first rule with a codec prescription that matches `s`, if any: a codec chosen by a rule overrides the
    /// recompress ladder for that segment.
    pub fn codec_rule(&self, now_ms: i64, s: &SegmentStats, capacity: &Capacity) -> Option<&Rule> {
        let cx = RuleContext { now_ms, hot_fill: capacity.fill() };
        first_match(&self.rules, s, cx, |r| r.codec.is_some())
    }

    /// The first rule with a compaction target that matches `s`, if any: its target replaces the compact pass's
    /// default `target_bytes` for that segment.
    pub fn compact_rule(&self, now_ms: i64, s: &SegmentStats, capacity: &Capacity) -> Option<&Rule> {
        let cx = RuleContext { now_ms, hot_fill: capacity.fill() };
        first_match(&self.rules, s, cx, |r| r.compact_target_bytes.is_some())
    }

    /// The plan at `now_ms` over one catalog snapshot; see the [module docs](self) for what it guarantees.
    pub fn plan(&self, now_ms: i64, segments: &[SegmentStats], prices: &Prices, capacity: &Capacity) -> TieringPlan {
        let cx = RuleContext { now_ms, hot_fill: capacity.fill() };
        let mut seen = HashMap::<&str, usize>::new();
        for s in segments {
            *seen.entry(s.id.as_str()).or_default() += 1;
        }
        let mut eligible: Vec<&SegmentStats> = segments
            .iter()
            .filter(|s| {
                seen[s.id.as_str()] == 1 && s.state == SegmentState::Sealed && s.format == SegmentFormat::Columnar
            })
            .collect();
        eligible.sort_by(|a, b| a.id.cmp(&b.id));

        // Rewrites read only segments with a hot copy; their output is a new hot segment.
        let rewritable: Vec<&SegmentStats> =
            eligible.iter().copied().filter(|s| s.placement != Placement::Cold).collect();
        let mut actions = self.compactions(&rewritable, cx);
        let compacted: std::collections::HashSet<String> = actions.iter().map(|a| a.segment.clone()).collect();
        let mut taken: std::collections::HashSet<&str> =
            eligible.iter().map(|s| s.id.as_str()).filter(|id| compacted.contains(*id)).collect();
        for s in &rewritable {
            if taken.contains(s.id.as_str()) {
                continue;
            }
            let Some(rule) = first_match(&self.rules, s, cx, |r| r.codec.is_some()) else { continue };
            let codec = rule.codec.clone().unwrap_or_default();
            if s.codec != codec {
                taken.insert(s.id.as_str());
                let reason = format!("rule {:?}: codec {} -> {codec}", rule.name, s.codec);
                actions.push(self.action(s, TieringActionKind::Recompress { codec }, rule, reason, 0.0, 0.0));
            }
        }
        let moves: Vec<Candidate> = eligible
            .iter()
            .filter(|s| !taken.contains(s.id.as_str()))
            .filter_map(|s| self.move_candidate(now_ms, s, cx, prices))
            .collect();
        actions.extend(self.within_limits(moves, capacity));
        self.bill(actions, segments, prices)
    }

    /// Compact actions: the segments whose first compaction rule gives a target, grouped by target, and the merges
    /// the compact planner makes of each group ([`TieringPolicy::compact_planner`]: small segments of one
    /// (project, day) binned up to the target, at least `compact_min_inputs` per merge), which is what the compact
    /// pass will carry out.
    fn compactions(&self, eligible: &[&SegmentStats], cx: RuleContext) -> Vec<TieringAction> {
        let mut groups: BTreeMap<u64, Vec<(&SegmentStats, &Rule)>> = BTreeMap::new();
        for s in eligible {
            if let Some(rule) = first_match(&self.rules, s, cx, |r| r.compact_target_bytes.is_some()) {
                let target = rule.compact_target_bytes.unwrap_or(u64::MAX);
                groups.entry(target).or_default().push((s, rule));
            }
        }
        let mut out = Vec::new();
        for (target, group) in groups {
            let rules: HashMap<&str, &Rule> = group.iter().map(|(s, r)| (s.id.as_str(), *r)).collect();
            let by_id: HashMap<&str, &SegmentStats> = group.iter().map(|(s, _)| (s.id.as_str(), *s)).collect();
            let stats: Vec<SegmentStats> = group.iter().map(|(s, _)| (*s).clone()).collect();
            for merge in self.compact_planner(target).plan(cx.now_ms, &stats) {
                for id in &merge.inputs {
                    let (Some(s), Some(rule)) = (by_id.get(id.as_str()), rules.get(id.as_str())) else { continue };
                    let reason = format!("rule {:?}: {}", rule.name, merge.reason);
                    let kind = TieringActionKind::Compact { target_bytes: target };
                    out.push(self.action(s, kind, rule, reason, 0.0, 0.0));
                }
            }
        }
        out
    }

    /// The move `s`'s placement rule asks for, if residency, hysteresis and cost allow it.
    fn move_candidate<'a>(
        &'a self,
        now_ms: i64,
        s: &'a SegmentStats,
        cx: RuleContext,
        prices: &Prices,
    ) -> Option<Candidate<'a>> {
        let rule = first_match(&self.rules, s, cx, |r| r.placement.is_some())?;
        let to = rule.placement?;
        if to == s.placement || age_ms(now_ms, s.placed_at_ms) < self.min_residency_ms {
            return None;
        }
        let (reads, _) = heat(s);
        let before = monthly_cost(s, s.placement, prices);
        let delta = monthly_cost(s, to, prices) - before;
        let transition = transition_cost(s.bytes, s.placement, to, prices);
        let saving_over_horizon = -delta * self.horizon_ms as f64 / MONTH_MS as f64;
        let age = human::duration(age_ms(now_ms, s.max_time_ms));
        let why = if rule.force {
            format!("forced; heat {reads:.2}/day, newest event {age} old")
        } else {
            if !(self.keeps_hysteresis(s, to) && delta < 0.0 && saving_over_horizon > transition) {
                return None;
            }
            format!(
                "heat {reads:.2}/day, newest event {age} old; saves ${:.6}/month, pays back ${transition:.6} in {}",
                -delta,
                break_even_ms(transition, -delta).map_or_else(|| "never".into(), human::duration)
            )
        };
        Some(Candidate { s, rule, to, delta, transition, why })
    }

    /// Keeps the candidates within the per-direction byte limit, the hot capacity and the fill watermarks.
    fn within_limits(&self, mut moves: Vec<Candidate>, capacity: &Capacity) -> Vec<TieringAction> {
        // To the hot disk: hottest first. To the cold tier: coldest, then oldest, first. Ties by id.
        moves.sort_by(|a, b| {
            let (ha, hb) = (heat(a.s).0, heat(b.s).0);
            let (da, db) = (is_to_hot(a.s.placement, a.to), is_to_hot(b.s.placement, b.to));
            db.cmp(&da)
                .then_with(|| if da { hb.total_cmp(&ha) } else { ha.total_cmp(&hb) })
                .then_with(|| a.s.max_time_ms.cmp(&b.s.max_time_ms))
                .then_with(|| a.s.id.cmp(&b.s.id))
        });
        let cap = capacity.hot_bytes_capacity;
        let promotion_limit = self.promotion_limit(capacity);
        let mut hot_used = capacity.hot_bytes_used;
        let mut fill_used = capacity.hot_bytes_used;
        let (mut to_hot_bytes, mut to_cold_bytes) = (0u64, 0u64);
        let (mut to_hot_n, mut to_cold_n) = (0usize, 0usize);
        let mut out = Vec::new();
        for c in moves {
            let to_hot = is_to_hot(c.s.placement, c.to);
            let (bytes, n) =
                if to_hot { (&mut to_hot_bytes, &mut to_hot_n) } else { (&mut to_cold_bytes, &mut to_cold_n) };
            if *n > 0 && bytes.saturating_add(c.s.bytes) > self.max_bytes_per_pass {
                continue;
            }
            if adds_hot(c.s.placement, c.to) && promotion_limit.is_some_and(|l| hot_used.saturating_add(c.s.bytes) > l)
            {
                continue;
            }
            let mut why = c.why;
            if let Some(watermark) = c.rule.hot_fill_above {
                let limit = (watermark * cap as f64) as u64;
                if fill_used <= limit {
                    continue;
                }
                if c.s.placement == Placement::Hot || c.s.placement == Placement::Both && c.to == Placement::Cold {
                    fill_used = fill_used.saturating_sub(c.s.bytes);
                }
                why = format!(
                    "hot disk {:.1}% full > {:.1}%; {why}",
                    100.0 * capacity.fill().unwrap_or(0.0),
                    100.0 * watermark
                );
            }
            if adds_hot(c.s.placement, c.to) {
                hot_used = hot_used.saturating_add(c.s.bytes);
            }
            *bytes = bytes.saturating_add(c.s.bytes);
            *n += 1;
            let reason = format!(
                "rule {:?}: {} -> {} ({}): {why}",
                c.rule.name,
                label(c.s.placement),
                label(c.to),
                human::bytes(c.s.bytes)
            );
            out.push(self.action(c.s, TieringActionKind::Move { to: c.to }, c.rule, reason, c.delta, c.transition));
        }
        out
    }

    fn action(
        &self,
        s: &SegmentStats,
        kind: TieringActionKind,
        rule: &Rule,
        reason: String,
        delta: f64,
        transition: f64,
    ) -> TieringAction {
        TieringAction {
            segment: s.id.clone(),
            project: s.project.clone(),
            day: s.day,
            kind,
            rule: rule.name.clone(),
            reason,
            bytes: s.bytes,
            monthly_cost_delta: delta,
            transition_cost: transition,
        }
    }

    /// Sorts the actions (by segment id) and prices the catalog before and after them.
    fn bill(&self, mut actions: Vec<TieringAction>, segments: &[SegmentStats], prices: &Prices) -> TieringPlan {
        actions.sort_by(|a, b| a.segment.cmp(&b.segment));
        let moved: HashMap<&str, Placement> = actions
            .iter()
            .filter_map(|a| match a.kind {
                TieringActionKind::Move { to } => Some((a.segment.as_str(), to)),
                _ => None,
            })
            .collect();
        let mut plan = TieringPlan::default();
        // Sums in a fixed order, so that the totals do not depend on the input order to the last bit.
        let mut sorted: Vec<&SegmentStats> = segments.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.id, &a.project, a.day, a.bytes, &a.codec, a.placement, a.state, a.format)
                .cmp(&(&b.id, &b.project, b.day, b.bytes, &b.codec, b.placement, b.state, b.format))
                .then_with(|| a.heat.total_cmp(&b.heat))
                .then_with(|| a.heat_bytes.total_cmp(&b.heat_bytes))
        });
        for s in sorted {
            let after = moved.get(s.id.as_str()).copied().unwrap_or(s.placement);
            for (placement, is_after) in [(s.placement, false), (after, true)] {
                let (hot, cold) = monthly_cost_split(s, placement, prices);
                let codec = plan.by_codec.entry(s.codec.clone()).or_default();
                add(codec, s.bytes, hot + cold, is_after);
                if placement != Placement::Cold {
                    add(plan.by_tier.entry("hot".into()).or_default(), s.bytes, hot, is_after);
                }
                if placement != Placement::Hot {
                    add(plan.by_tier.entry("cold".into()).or_default(), s.bytes, cold, is_after);
                }
                if is_after {
                    plan.monthly_cost_after += hot + cold;
                } else {
                    plan.monthly_cost_before += hot + cold;
                }
            }
        }
        // Folded from +0.0: an empty f64 sum is -0.0, which would show as `-0` in the JSON.
        plan.transition_cost = actions.iter().map(|a| a.transition_cost).fold(0.0, |a, b| a + b);
        plan.break_even_ms = break_even_ms(plan.transition_cost, plan.monthly_cost_before - plan.monthly_cost_after);
        plan.actions = actions;
        plan
    }
}

fn add(cost: &mut TierCost, bytes: u64, monthly: f64, after: bool) {
    if after {
        cost.segments_after += 1;
        cost.bytes_after = cost.bytes_after.saturating_add(bytes);
        cost.monthly_after += monthly;
    } else {
        cost.segments += 1;
        cost.bytes = cost.bytes.saturating_add(bytes);
        cost.monthly_before += monthly;
    }
}

/// `hot`, `cold`, `both`.
pub fn label(p: Placement) -> &'static str {
    match p {
        Placement::Hot => "hot",
        Placement::Cold => "cold",
        Placement::Both => "both",
    }
}

/// The segments as they would be once `plan` is carried out at `now_ms`, with the hot disk's use: moves change
/// placement (and `placed_at_ms`), recompressions the codec, and each (project, day, target) group of compactions
/// becomes one segment named after its smallest input id. Rewrite outputs are new hot segments placed at `now_ms`;
/// their sizes are the inputs' (the codec's effect is unknown), and the hot disk's use is left as it was for them.
pub fn apply(
    now_ms: i64,
    plan: &TieringPlan,
    segments: &[SegmentStats],
    capacity: &Capacity,
) -> (Vec<SegmentStats>, Capacity) {
    let by_id: HashMap<&str, &TieringAction> = plan.actions.iter().map(|a| (a.segment.as_str(), a)).collect();
    let mut capacity = *capacity;
    let mut out = Vec::with_capacity(segments.len());
    let mut merged: BTreeMap<(String, i32, u64), SegmentStats> = BTreeMap::new();
    for s in segments {
        let mut s = s.clone();
        match by_id.get(s.id.as_str()).map(|a| &a.kind) {
            Some(TieringActionKind::Move { to }) => {
                let (was_hot, now_hot) = (s.placement != Placement::Cold, *to != Placement::Cold);
                if now_hot && !was_hot {
                    capacity.hot_bytes_used = capacity.hot_bytes_used.saturating_add(s.bytes);
                } else if was_hot && !now_hot {
                    capacity.hot_bytes_used = capacity.hot_bytes_used.saturating_sub(s.bytes);
                }
                s.placement = *to;
                s.placed_at_ms = now_ms;
            }
            Some(TieringActionKind::Recompress { codec }) => {
                // A rewrite's output is a new segment on the hot disk (rewrites only read segments with a hot copy).
                s.codec = codec.clone();
                s.placement = Placement::Hot;
                s.placed_at_ms = now_ms;
            }
            Some(TieringActionKind::Compact { target_bytes }) => {
                s.placement = Placement::Hot;
                s.placed_at_ms = now_ms;
                let key = (s.project.clone(), s.day, *target_bytes);
                match merged.get_mut(&key) {
                    Some(m) => {
                        m.bytes = m.bytes.saturating_add(s.bytes);
                        m.rows = m.rows.saturating_add(s.rows);
                        m.max_time_ms = m.max_time_ms.max(s.max_time_ms);
                        m.created_at_ms = m.created_at_ms.min(s.created_at_ms);
                        m.heat += s.heat;
                        m.heat_bytes += s.heat_bytes;
                        if s.id < m.id {
                            m.id = s.id;
                        }
                        m.state = SegmentState::Sealed;
                    }
                    None => {
                        merged.insert(key, s);
                    }
                }
                continue;
            }
            None => {}
        }
        out.push(s);
    }
    out.extend(merged.into_values());
    (out, capacity)
}

#[cfg(test)]
mod tests;
